// ForgeRun's console in Debian's Chromium, driven by playwright-core, against the real app: the
// `app` binary built with cargo and started on a free port (SQLite, the in-process queue, local
// storage in a temporary directory), with ADMIN_TOKEN set and the jobs dashboard's built page
// (core-dashboard/frontend/dist, which core-dashboard/scripts/test builds).
// No browser is ever downloaded: CHROMIUM (default /usr/bin/chromium) must exist.
//
//   npm ci && node console.mjs
//
// Prints one line per test and ends with `e2e: N passed, M failed`; exits 1 on any failure.
// Saves test-results/console-job.png and console-375.png for a person to look at;
// UPDATE_DOCS_SCREENSHOT=1 copies the first to the docs site (core-docs/frontend/public/console.png).

import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = fileURLToPath(new URL('.', import.meta.url))
const workspace = resolve(here, '../..')
const dist = process.env.RUSTFORGE_DASHBOARD_DIR ?? join(workspace, 'core-dashboard/frontend/dist')
const results = resolve(here, 'test-results')
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium'
const TOKEN = 'console-e2e-admin-token-' + Math.random().toString(36).slice(2)

/** Builds the app with cargo; the path of its executable. */
function buildApp() {
  const built = spawnSync('cargo', ['build', '--quiet', '-p', 'app', '--bin', 'app', '--message-format=json'], {
    cwd: workspace,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  })
  if (built.status !== 0) throw new Error('cargo build of the app failed')
  for (const line of built.stdout.split('\n')) {
    if (!line.includes('"executable"')) continue
    const message = JSON.parse(line)
    if (message.target?.name === 'app' && message.executable) return message.executable
  }
  throw new Error('cargo did not name the app executable')
}

/** Starts `app serve` on a free port in `dir`; its process and its address. */
async function startApp(executable, dir) {
  const child = spawn(executable, [], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      PORT: '0',
      LOG_FORMAT: 'json',
      RUST_LOG: 'warn,app=info,core_web=info',
      ADMIN_TOKEN: TOKEN,
      RUSTFORGE_DASHBOARD_DIR: dist,
      // SUCCESS_NORMAL (10 s in the catalog) runs for about 3 s.
      WORK_TIME_SCALE: '0.3',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the app did not start within 30 s')), 30_000)
    child.on('exit', (code) => fail(new Error(`the app exited with ${code}`)))
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /"address":"(http:\/\/[^"]+)"/.exec(line)
      if (match && line.includes('listening')) {
        clearTimeout(timer)
        ok(match[1])
      }
    })
  })
  return { child, base }
}

/** `POST /v1/…` as JSON with `key`; the response's `data`. */
async function post(base, path, body, key) {
  const response = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  })
  const json = await response.json()
  if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${JSON.stringify(json)}`)
  return json.data
}

const tests = []
const test = (name, fn) => tests.push({ name, fn })

function assert(condition, message) {
  if (!condition) throw new Error(message)
}

/** Problems the page reported: console errors, uncaught exceptions, failed requests. */
function watch(page) {
  const problems = []
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`)
  })
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('requestfailed', (request) => {
    // Leaving a page aborts what it still had in flight (its event streams, a list being
    // fetched): the page's own doing, not a failure. A server's errors show as responses below.
    if (request.failure()?.errorText === 'net::ERR_ABORTED') return
    problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`)
  })
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`)
  })
  return problems
}

async function signIn(page, dashboard) {
  await page.goto(dashboard)
  await page.waitForURL(/\/login$/)
  await page.locator('#token').fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL(dashboard)
  await page.getByRole('heading', { name: 'Jobs dashboard', level: 1 }).waitFor()
}

/** Elements wider than the viewport's right edge, outside the tables' own scrolling boxes. */
async function overflowing(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth
    const out = []
    for (const el of document.querySelectorAll('body *')) {
      if (el.closest('.overflow-x-auto, pre')) continue
      const box = el.getBoundingClientRect()
      if (box.right > width + 0.5 && box.width > 0) out.push(`${el.tagName.toLowerCase()}.${String(el.className).slice(0, 60)}`)
    }
    return out.slice(0, 5)
  })
}

test('the console lists a client’s jobs and follows one live from its timeline to its end', async ({ page, base, problems }) => {
  const dashboard = `${base}/admin/jobs/`
  const client = await post(base, '/v1/clients', { name: 'console e2e' })
  const other = await post(base, '/v1/clients', { name: 'someone else' })
  await post(base, '/v1/jobs', { work_kind: 'SUCCESS_FAST' }, other.api_key)
  const job = await post(base, '/v1/jobs', { work_kind: 'SUCCESS_NORMAL' }, client.api_key)

  await signIn(page, dashboard)
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'ForgeRun jobs' }).click()
  await page.getByRole('heading', { name: 'ForgeRun jobs' }).waitFor()
  // Filter by the client, as `GET /v1/jobs` would for it.
  await page.getByLabel('Client').fill(client.client_id)
  await page.getByRole('button', { name: 'Apply filters' }).click()
  await page.waitForFunction(
    (id) => {
      const rows = [...document.querySelectorAll('table[aria-label="ForgeRun jobs"] tbody tr[data-row]')]
      return rows.length === 1 && rows[0].dataset.row === id
    },
    job.job_id,
  ).catch(async () => {
    throw new Error(`one row, the client's job: ${await page.locator('table[aria-label="ForgeRun jobs"] tbody').innerText()}`)
  })
  assert(page.url().includes('filter%5Bclient_id%5D='), `the filter is in the address: ${page.url()}`)

  // Open it while it runs: live, its timeline growing, then finished without a reload.
  await page.locator(`tr[data-row="${job.job_id}"] a`).click()
  await page.getByRole('heading', { name: 'SUCCESS_NORMAL job' }).waitFor()
  await page.getByTestId('record-live').filter({ hasText: 'Live' }).waitFor()
  const badge = page.locator('article[data-record] h2 + [data-status]')
  const before = await badge.getAttribute('data-status')
  assert(['QUEUED', 'ASSIGNED', 'RUNNING'].includes(before), `not finished when opened: ${before}`)
  await page.locator('ol[aria-label="Timeline"] li[data-timeline="RUNNING"]').waitFor()
  await page.locator('ol[aria-label="Timeline"] li[data-timeline="SUCCEEDED"]').waitFor({ timeout: 20_000 })
  await page.getByTestId('record-live').filter({ hasText: 'Finished' }).waitFor()
  assert((await badge.getAttribute('data-status')) === 'SUCCEEDED', 'the badge says SUCCEEDED')
  // The time spent before SUCCEEDED is the run: about 3 s.
  const gap = await page.locator('li[data-timeline="SUCCEEDED"] [data-gap]').textContent()
  assert(/^\+\d+(\.\d)? s$/.test(gap ?? ''), `the run's duration: ${gap}`)
  const labels = await page.locator('ol[aria-label="Timeline"] li').evaluateAll((items) => items.map((li) => li.dataset.timeline))
  assert(labels.join() === 'CREATED,QUEUED,ASSIGNED,RUNNING,SUCCEEDED', `timeline: ${labels}`)
  // Its report and its artifacts (SUCCESS_NORMAL's 16 KiB output stays inline: none here).
  await page.locator('section[data-section="Report"] pre').filter({ hasText: '"outcome": "SUCCEEDED"' }).waitFor()
  await page.locator('section[data-section="Webhook deliveries"]').getByText('No webhook deliveries').waitFor()
  mkdirSync(results, { recursive: true })
  const shot = join(results, 'console-job.png')
  await page.screenshot({ path: shot })
  // The docs site's Dashboard page shows this view; UPDATE_DOCS_SCREENSHOT=1 writes it there.
  if (process.env.UPDATE_DOCS_SCREENSHOT) copyFileSync(shot, join(workspace, 'core-docs/frontend/public/console.png'))

  // Back to the list, the filter kept.
  await page.getByRole('link', { name: /← ForgeRun jobs/ }).click()
  await page.locator(`tr[data-row="${job.job_id}"]`).waitFor()
  assert(problems.length === 0, problems.join('\n'))
})

test('the console is usable at 375 px', async ({ page, base, problems }) => {
  await page.setViewportSize({ width: 375, height: 800 })
  await signIn(page, `${base}/admin/jobs/`)
  await page.getByRole('link', { name: 'ForgeRun jobs' }).click()
  const row = page.locator('table[aria-label="ForgeRun jobs"] tbody tr[data-row]').first()
  await row.waitFor()
  assert((await overflowing(page)).length === 0, `wider than 375 px: ${await overflowing(page)}`)
  await row.locator('a').click()
  await page.locator('ol[aria-label="Timeline"]').waitFor()
  assert((await overflowing(page)).length === 0, `record wider than 375 px: ${await overflowing(page)}`)
  mkdirSync(results, { recursive: true })
  await page.screenshot({ path: join(results, 'console-375.png'), fullPage: true })
  assert(problems.length === 0, problems.join('\n'))
})

test('the console needs the session', async ({ base }) => {
  const response = await fetch(`${base}/admin/jobs/api/panels/jobs/rows`)
  assert(response.status === 401, `rows without a session: ${response.status}`)
  assert((response.headers.get('content-type') ?? '').startsWith('application/json'), 'a JSON error')
})

async function main() {
  if (!existsSync(join(dist, 'index.html'))) {
    console.error(`${dist}/index.html is missing: build the dashboard's page first (core-dashboard/scripts/test)`)
    process.exit(1)
  }
  if (!existsSync(executablePath)) {
    console.error(`${executablePath} is missing: install Debian's Chromium (apt-get install chromium)`)
    process.exit(1)
  }
  const executable = buildApp()
  const dir = mkdtempSync(join(tmpdir(), 'forgerun-console-'))
  const { child, base } = await startApp(executable, dir)
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  let passed = 0
  let failed = 0
  try {
    for (const { name, fn } of tests) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
      const page = await context.newPage()
      page.setDefaultTimeout(10_000)
      const problems = watch(page)
      try {
        await fn({ page, base, problems })
        passed++
        console.log(`ok   ${name}`)
      } catch (error) {
        failed++
        console.log(`FAIL ${name}\n     ${String(error?.stack ?? error).split('\n').join('\n     ')}`)
      } finally {
        await context.close()
      }
    }
  } finally {
    await browser.close()
    child.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
  console.log(`e2e: ${passed} passed, ${failed} failed`)
  process.exit(failed === 0 ? 0 : 1)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})

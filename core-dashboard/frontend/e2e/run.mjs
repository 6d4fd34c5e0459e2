// End-to-end tests of the dashboard's page in Debian's Chromium, driven by playwright-core,
// against the real server: core-dashboard's `dashboard_demo` example (the in-process queue, a
// SQLite store seeded with five failed jobs), built with cargo and started on a free port; the
// chart tests use a second instance with `DEMO_TRAFFIC=1` (a worker in the process and jobs
// dispatched all the time, sampled every second).
// No browser is ever downloaded: CHROMIUM (default /usr/bin/chromium) must exist.
//
//   npm run build && node e2e/run.mjs
//
// The tests run in order and share the demo's data (a retry and a bulk forget change it).
// Prints one line per test and ends with `e2e: N passed, M failed`; exits 1 on any failure.
// Saves test-results/dashboard.png, dashboard-375.png, charts.png, charts-375-dark.png, jobs.png
// and jobs-375-dark.png for a person to look at.

import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = fileURLToPath(new URL('.', import.meta.url))
const dist = resolve(here, '../dist')
const results = resolve(here, '../test-results')
const workspace = resolve(here, '../../..')
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium'
const TOKEN = 'e2e-admin-token-' + Math.random().toString(36).slice(2)

/** Builds the demo server with cargo; the path of its executable. */
function buildDemo() {
  const built = spawnSync(
    'cargo',
    ['build', '--quiet', '-p', 'core-dashboard', '--example', 'dashboard_demo', '--message-format=json'],
    { cwd: workspace, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
  )
  if (built.status !== 0) throw new Error('cargo build of the dashboard_demo example failed')
  for (const line of built.stdout.split('\n')) {
    if (!line.includes('"executable"')) continue
    const message = JSON.parse(line)
    if (message.target?.name === 'dashboard_demo' && message.executable) return message.executable
  }
  throw new Error('cargo did not name the dashboard_demo executable')
}

/** Starts the demo on a free port; its process and the dashboard's address. */
async function startDemo(executable, env = {}) {
  const child = spawn(executable, [], {
    env: { ...process.env, DASHBOARD_TOKEN: TOKEN, PORT: '0', RUSTFORGE_DASHBOARD_DIR: dist, RUST_LOG: 'error', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the demo did not start within 30 s')), 30_000)
    child.on('exit', (code) => fail(new Error(`the demo exited with ${code}`)))
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^listening on (http:\/\/\S+)$/.exec(line)
      if (match) {
        clearTimeout(timer)
        ok(match[1])
      }
    })
  })
  return { child, base }
}

const tests = []
const test = (name, fn) => tests.push({ name, fn })

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

function assert(condition, message) {
  if (!condition) throw new Error(message)
}

/** Signs in through the sign-in form and waits for the dashboard's page. */
async function signIn(page, base) {
  await page.goto(base)
  await page.waitForURL(/\/login$/)
  await page.locator('#token').fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL(base)
  await page.getByRole('heading', { name: 'Jobs dashboard', level: 1 }).waitFor()
}

const total = (page, key) => page.getByTestId(`total-${key}`)
/** Waits until the total `key` shows `value` (the live updates bring it). */
async function totalIs(page, key, value) {
  await page.waitForFunction(
    ([k, v]) => document.querySelector(`[data-testid="total-${k}"]`)?.textContent === String(v),
    [key, value],
  ).catch(async () => {
    throw new Error(`total ${key}: expected ${value}, shows ${await total(page, key).textContent()}`)
  })
}
const failedRows = (page) => page.locator('table[aria-label="Failed jobs"] tbody tr[data-id]')

async function applyFilter(page, values) {
  for (const [name, value] of Object.entries(values)) await page.locator(`form input[name="${name}"]`).fill(value)
  await page.getByRole('button', { name: 'Apply filter' }).click()
}

async function rowCountIs(page, n) {
  await page
    .waitForFunction(
      (want) => document.querySelectorAll('table[aria-label="Failed jobs"] tbody tr[data-id]').length === want,
      n,
    )
    .catch(async () => {
      throw new Error(`expected ${n} failed-job rows, found ${await failedRows(page).count()}`)
    })
}

/** Elements wider than the viewport's right edge, for a readable failure message. */
async function overflowing(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth
    const out = []
    for (const el of document.querySelectorAll('body *')) {
      const box = el.getBoundingClientRect()
      if (box.right > width + 0.5 && box.width > 0 && !out.some((o) => o.el.contains(el))) {
        out.push({ el, what: `${el.tagName.toLowerCase()}.${String(el.className).slice(0, 60)} right=${Math.round(box.right)}` })
      }
    }
    return out.slice(0, 5).map((o) => o.what)
  })
}

/** The mean of the red, green and blue (0–255) of an element's computed colour `property`. */
async function brightness(page, selector, property = 'backgroundColor') {
  return page.locator(selector).first().evaluate((el, prop) => {
    const canvas = document.createElement('canvas')
    canvas.width = canvas.height = 1
    const ctx = canvas.getContext('2d', { willReadFrequently: true })
    ctx.fillStyle = getComputedStyle(el)[prop]
    ctx.fillRect(0, 0, 1, 1)
    const [r, g, b] = ctx.getImageData(0, 0, 1, 1).data
    return (r + g + b) / 3
  }, property)
}

test('a page request without the session is sent to the sign-in page', async ({ base }) => {
  for (const path of ['', 'index.html', 'assets/nothing.js']) {
    const response = await fetch(base + path, { redirect: 'manual' })
    assert(response.status === 303, `${path || '/'}: ${response.status}`)
    assert(response.headers.get('location')?.endsWith('/admin/jobs/login'), `${path}: to ${response.headers.get('location')}`)
  }
  const api = await fetch(base + 'api/queues', { redirect: 'manual' })
  assert(api.status === 401, `api/queues without a session: ${api.status}`)
})

test('sign in and see the queue counts, live', async ({ page, base, problems }) => {
  await signIn(page, base)
  await totalIs(page, 'ready', 3)
  await totalIs(page, 'delayed', 1)
  await totalIs(page, 'failed', 5)
  await page.getByTestId('live-mode').filter({ hasText: 'Live' }).waitFor()
  const queues = await page.locator('table[aria-label="Counts per queue"] tbody tr').evaluateAll((rows) =>
    rows.map((r) => [r.dataset.queue, ...[...r.querySelectorAll('td')].map((td) => td.textContent)]),
  )
  assert(
    JSON.stringify(queues) === JSON.stringify([['default', '2', '1', '0', '3'], ['mail', '1', '0', '0', '2']]),
    `per queue: ${JSON.stringify(queues)}`,
  )
  await rowCountIs(page, 5)
  mkdirSync(results, { recursive: true })
  await page.screenshot({ path: join(results, 'dashboard.png'), fullPage: true })
  assert(problems.length === 0, problems.join('\n'))
})

test('the schedule lists each cron entry with its next run', async ({ page, base, problems }) => {
  await signIn(page, base)
  const rows = page.locator('table[aria-label="Scheduled jobs"] tbody tr')
  await rows.first().waitFor()
  const entries = await rows.evaluateAll((trs) =>
    trs.map((tr) => [tr.dataset.schedule, tr.querySelector('td')?.textContent, tr.querySelector('[data-next-run]')?.textContent]),
  )
  assert(entries.length === 2, `two entries: ${JSON.stringify(entries)}`)
  assert(entries[0][0] === 'morning-digest' && entries[0][1] === '0 0 7 * * mon-fri', `first: ${entries[0]}`)
  assert(entries[1][0] === 'work' && entries[1][1] === '0 */15 * * * *', `second: ${entries[1]}`)
  const next = new Date(await page.evaluate(() => fetch('api/schedule').then((r) => r.json()).then((b) => b.data[1].next_run)))
  const ahead = next.getTime() - Date.now()
  assert(ahead > 0 && ahead <= 15 * 60 * 1000, `the next quarter hour: ${next.toISOString()}`)
  assert(entries.every(([, , shown]) => shown && shown !== 'never'), 'next runs shown')
  assert((await rows.nth(1).getByText('no overlap').count()) === 1, 'the overlap rule is shown')
  assert(problems.length === 0, problems.join('\n'))
})

/** The `d` of a chart's line. */
const pathOf = (page, chart, series) =>
  page.locator(`[data-testid="chart-${chart}"] path[data-series="${series}"]`).getAttribute('d')

/** Waits until a chart's line is drawn through at least `n` points; returns its `d`. */
async function drawnThrough(page, chart, series, n) {
  await page
    .waitForFunction(
      ([c, s, want]) => {
        const d = document.querySelector(`[data-testid="chart-${c}"] path[data-series="${s}"]`)?.getAttribute('d') ?? ''
        return (d.match(/[ML]/g) ?? []).length >= want
      },
      [chart, series, n],
      { timeout: 15_000 },
    )
    .catch(async () => {
      throw new Error(`${chart}/${series}: not drawn through ${n} points: ${await pathOf(page, chart, series)}`)
    })
  return pathOf(page, chart, series)
}

test('the charts render with time labels, before any sample too', async ({ page, base, problems }) => {
  await signIn(page, base)
  const charts = page.locator('section[data-slot="charts"]')
  await charts.getByRole('heading', { name: /Throughput, last 1 h/ }).waitFor()
  assert(await charts.isVisible(), 'the charts section is shown')
  for (const id of ['throughput', 'failure-rate']) {
    const svg = page.locator(`[data-testid="chart-${id}"] svg[role="img"]`)
    await svg.waitFor()
    const labels = await page.locator(`[data-testid="chart-${id}"] text[data-tick="x"]`).allTextContents()
    assert(labels.length >= 2 && labels.every((l) => /^\d\d:\d\d(:\d\d)?$/.test(l)), `${id} time labels: ${labels}`)
  }
  assert(problems.length === 0, problems.join('\n'))
})

test('with a worker running jobs, the charts move live and follow the queue picked', async ({ page, traffic, problems }) => {
  await signIn(page, traffic)
  await page.getByTestId('live-mode').filter({ hasText: 'Live' }).waitFor()
  await page.locator('section[data-slot="charts"]').getByRole('heading', { name: /Throughput, last 10 min/ }).waitFor()
  const before = await drawnThrough(page, 'throughput', 'processed', 2)
  // New points arrive over the event stream, without a reload.
  await page.waitForFunction(
    ([d]) => document.querySelector('[data-testid="chart-throughput"] path[data-series="processed"]')?.getAttribute('d') !== d,
    [before],
    { timeout: 15_000 },
  )
  const legend = await page.locator('[data-testid="chart-throughput"] [data-legend="processed"] .tabular-nums').textContent()
  assert(Number(legend) > 0, `jobs per minute shown: ${legend}`)
  await drawnThrough(page, 'failure-rate', 'failure', 2)
  // The docs site's Dashboard page shows this view; UPDATE_DOCS_SCREENSHOT=1 writes it there.
  mkdirSync(results, { recursive: true })
  const shot = join(results, 'dashboard-live.png')
  await page.screenshot({ path: shot, fullPage: true })
  if (process.env.UPDATE_DOCS_SCREENSHOT) copyFileSync(shot, join(workspace, 'core-docs/frontend/public/dashboard.png'))
  const all = await pathOf(page, 'throughput', 'processed')
  await page.getByTestId('chart-queue').selectOption('mail')
  await page.waitForFunction(
    ([d]) => document.querySelector('[data-testid="chart-throughput"] path[data-series="processed"]')?.getAttribute('d') !== d,
    [all],
  )
  mkdirSync(results, { recursive: true })
  await page.locator('section[data-slot="charts"]').screenshot({ path: join(results, 'charts.png') })
  assert(problems.length === 0, problems.join('\n'))
})

test('a slow job shows under Running, then under Recent with its outcome', async ({ page, traffic, problems }) => {
  await signIn(page, traffic)
  const section = page.locator('section[data-slot="jobs"]')
  // The demo dispatches a three-second `report` to `reports` every six seconds.
  await section.getByTestId('jobs-queue').selectOption('reports')
  const running = section.locator('table[aria-label="Running jobs"] tbody tr[data-running-id]').first()
  await running.waitFor({ timeout: 15_000 })
  const id = await running.getAttribute('data-running-id')
  assert((await running.locator('[data-job-name]').textContent()) === 'report', 'the running job is the report')
  const cells = await running.locator('td').allTextContents()
  assert(cells.includes('reports') && cells.includes('1'), `queue and attempt shown: ${cells}`)
  const finished = section.locator(`table[aria-label="Recent jobs"] tr[data-recent-id="${id}"]`)
  await finished.waitFor({ timeout: 15_000 })
  assert((await finished.locator('[data-outcome]').textContent()) === 'succeeded', 'its outcome is shown')
  const took = await finished.locator('td.tabular-nums').textContent()
  assert(/^\d\.\d s$/.test(took) && Number.parseFloat(took) >= 2.9, `it took about three seconds: ${took}`)
  await section.locator(`tr[data-running-id="${id}"]`).waitFor({ state: 'detached', timeout: 5_000 })
  // Only the picked queue's jobs are listed.
  const queues = await section.locator('table[aria-label="Recent jobs"] tbody tr[data-recent-id] td:nth-child(3)').allTextContents()
  assert(queues.length > 0 && queues.every((q) => q === 'reports'), `only reports: ${queues}`)
  mkdirSync(results, { recursive: true })
  await section.screenshot({ path: join(results, 'jobs.png') })
  assert(problems.length === 0, problems.join('\n'))
})

test('at 375 px in dark mode the running and recent jobs fit', async ({ page, traffic, problems }) => {
  await page.setViewportSize({ width: 375, height: 800 })
  await page.emulateMedia({ colorScheme: 'dark' })
  await signIn(page, traffic)
  const section = page.locator('section[data-slot="jobs"]')
  await section.locator('table[aria-label="Recent jobs"] tbody tr[data-recent-id]').first().waitFor({ timeout: 15_000 })
  const width = await page.evaluate(() => document.documentElement.scrollWidth)
  assert(width <= 375, `the page is ${width} px wide at 375 px: ${(await overflowing(page)).join('; ')}`)
  for (const table of ['Running jobs', 'Recent jobs']) {
    const box = await section.locator(`table[aria-label="${table}"]`).locator('..').boundingBox()
    assert(box && box.x >= 0 && box.x + box.width <= 375, `${table} within the viewport: ${JSON.stringify(box)}`)
  }
  assert((await brightness(page, 'section[data-slot="jobs"] table[aria-label="Recent jobs"] tbody tr', 'color')) > 150, 'light text on dark')
  await section.screenshot({ path: join(results, 'jobs-375-dark.png') })
  assert(problems.length === 0, problems.join('\n'))
})

test('at 375 px in dark mode the charts fit and stay readable', async ({ page, traffic, problems }) => {
  await page.setViewportSize({ width: 375, height: 800 })
  await page.emulateMedia({ colorScheme: 'dark' })
  await signIn(page, traffic)
  await drawnThrough(page, 'throughput', 'processed', 2)
  const width = await page.evaluate(() => document.documentElement.scrollWidth)
  assert(width <= 375, `the page is ${width} px wide at 375 px: ${(await overflowing(page)).join('; ')}`)
  const box = await page.locator('[data-testid="chart-throughput"] svg').boundingBox()
  assert(box && box.x >= 0 && box.x + box.width <= 375, `the chart is within the viewport: ${JSON.stringify(box)}`)
  assert((await brightness(page, '[data-testid="chart-throughput"] text[data-tick="x"]', 'fill')) > 120, 'light axis labels on dark')
  assert((await brightness(page, '[data-testid="chart-throughput"] path[data-series="processed"]', 'stroke')) > 100, 'a light line on dark')
  await page.locator('section[data-slot="charts"]').screenshot({ path: join(results, 'charts-375-dark.png') })
  assert(problems.length === 0, problems.join('\n'))
})

test('in light mode the chart text is dark', async ({ page, traffic }) => {
  await page.emulateMedia({ colorScheme: 'light' })
  await signIn(page, traffic)
  await page.locator('[data-testid="chart-throughput"] text[data-tick="x"]').first().waitFor()
  assert((await brightness(page, '[data-testid="chart-throughput"] text[data-tick="x"]', 'fill')) < 140, 'dark axis labels on light')
})

test('at 375 px wide the main view does not scroll sideways; dark mode follows the system', async ({ page, base, problems }) => {
  await page.setViewportSize({ width: 375, height: 800 })
  await page.emulateMedia({ colorScheme: 'dark' })
  await signIn(page, base)
  await rowCountIs(page, 5)
  await totalIs(page, 'failed', 5)
  const width = await page.evaluate(() => document.documentElement.scrollWidth)
  assert(width <= 375, `the page is ${width} px wide at 375 px: ${(await overflowing(page)).join('; ')}`)
  assert((await brightness(page, 'body')) < 60, 'a dark system gives a dark page')
  assert((await brightness(page, 'h1', 'color')) > 180, 'with light text')
  await page.screenshot({ path: join(results, 'dashboard-375.png'), fullPage: true })
  assert(problems.length === 0, problems.join('\n'))
})

test('filter the failed jobs, open one, retry it: the row goes and the count drops', async ({ page, base, problems }) => {
  await signIn(page, base)
  await rowCountIs(page, 5)
  await applyFilter(page, { job_name: 'mail', error: 'timed out' })
  await rowCountIs(page, 2)
  await page.getByTestId('failed-total').filter({ hasText: '2 failed jobs' }).waitFor()
  // Sorted newest first; the header sorts oldest first.
  const ids = () => failedRows(page).evaluateAll((rows) => rows.map((r) => Number(r.dataset.id)))
  const newestFirst = await ids()
  assert(newestFirst[0] > newestFirst[1], `newest first: ${newestFirst}`)
  await page.getByRole('button', { name: /Failed at/ }).click()
  await page.waitForFunction((first) => document.querySelector('table[aria-label="Failed jobs"] tbody tr[data-id]')?.dataset.id !== String(first), newestFirst[0])
  assert(JSON.stringify(await ids()) === JSON.stringify([...newestFirst].reverse()), `oldest first: ${await ids()}`)

  const row = failedRows(page).first()
  const id = await row.getAttribute('data-id')
  await row.getByRole('button', { name: 'mail' }).click()
  const dialog = page.getByRole('dialog')
  await dialog.getByTestId('detail-payload').waitFor()
  const payload = await dialog.getByTestId('detail-payload').textContent()
  assert(payload.includes('\n  "to": "'), `the payload is pretty-printed: ${payload}`)
  assert((await dialog.getByTestId('detail-attempts').textContent()) === '3', 'attempts shown')
  await dialog.getByText('SMTP timed out after 30s').waitFor()
  await dialog.getByRole('button', { name: 'Retry' }).click()
  await dialog.waitFor({ state: 'detached' })
  await rowCountIs(page, 1)
  assert((await page.locator(`tr[data-id="${id}"]`).count()) === 0, 'the retried row is gone')
  await page.getByRole('status').filter({ hasText: `#${id} re-dispatched` }).waitFor()
  await totalIs(page, 'failed', 4)
  await totalIs(page, 'ready', 4)
  assert(problems.length === 0, problems.join('\n'))
})

test('forget asks first; cancelling changes nothing', async ({ page, base, problems }) => {
  await signIn(page, base)
  await rowCountIs(page, 4)
  await failedRows(page).first().getByRole('button', { name: 'Forget' }).click()
  const dialog = page.getByRole('dialog')
  await dialog.getByText(/^Forget failed job #\d+\?$/).waitFor()
  await dialog.getByRole('button', { name: 'Cancel' }).click()
  await dialog.waitFor({ state: 'detached' })
  await rowCountIs(page, 4)
  assert(problems.length === 0, problems.join('\n'))
})

test('bulk forget on the filter states the count, then forgets exactly those', async ({ page, base, problems }) => {
  await signIn(page, base)
  await applyFilter(page, { queue: 'mail' })
  await rowCountIs(page, 2)
  await page.getByRole('button', { name: 'Bulk forget' }).click()
  let dialog = page.getByRole('dialog')
  const text = await dialog.getByTestId('bulk-count').textContent()
  assert(text.includes('exactly 2 rows matching the current filter'), `the dialog says: ${text}`)
  await dialog.getByRole('button', { name: 'Cancel' }).click()
  await page.getByRole('status').filter({ hasText: 'nothing was changed' }).waitFor()
  await rowCountIs(page, 2)

  await page.getByRole('button', { name: 'Clear' }).click()
  await rowCountIs(page, 4)
  await page.getByRole('button', { name: 'Bulk forget' }).click()
  dialog = page.getByRole('dialog')
  const all = await dialog.getByTestId('bulk-count').textContent()
  assert(all.includes('exactly 4 rows: every failed job'), `the dialog says: ${all}`)
  await dialog.getByRole('button', { name: 'Forget 4' }).click()
  await page.getByRole('status').filter({ hasText: '4 jobs forgotten' }).waitFor()
  await rowCountIs(page, 0)
  await page.getByText('No failed jobs.').waitFor()
  await totalIs(page, 'failed', 0)
  assert(problems.length === 0, problems.join('\n'))
})

test('a POST without the CSRF token gets 403; with it, 200', async ({ page, base }) => {
  await signIn(page, base)
  const body = { action: 'forget', filter: {} }
  const without = await page.request.post(base + 'api/failed/bulk/preview', { data: body })
  assert(without.status() === 403, `without the token: ${without.status()}`)
  assert((await without.json()).error_code === 'CSRF_TOKEN_INVALID', 'CSRF_TOKEN_INVALID')
  const csrf = (await (await page.request.get(base + 'api/session')).json()).data.csrf_token
  const withToken = await page.request.post(base + 'api/failed/bulk/preview', { data: body, headers: { 'x-csrf-token': csrf } })
  assert(withToken.status() === 200, `with the token: ${withToken.status()}`)
})

test('without the event stream the page polls the counts', async ({ page, base }) => {
  // A proxy that refuses the stream: EventSource gives up, the page polls api/queues instead.
  await page.route('**/api/events', (route) => route.fulfill({ status: 503, body: 'no streams here' }))
  const errors = []
  page.on('pageerror', (error) => errors.push(error.message))
  await signIn(page, base)
  await page.getByTestId('live-mode').filter({ hasText: 'Polling' }).waitFor()
  await totalIs(page, 'failed', 0)
  await totalIs(page, 'ready', 4)
  assert(errors.length === 0, errors.join('\n'))
})

test('sign out ends the session', async ({ page, base, problems }) => {
  await signIn(page, base)
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.waitForURL(/\/login$/)
  await page.goto(base)
  await page.waitForURL(/\/login$/)
  const api = await page.request.get(base + 'api/queues')
  assert(api.status() === 401, `api/queues after sign-out: ${api.status()}`)
  assert(problems.length === 0, problems.join('\n'))
})

async function main() {
  if (!existsSync(join(dist, 'index.html'))) {
    console.error('dist/index.html is missing: run `npm run build` first')
    process.exit(1)
  }
  if (!existsSync(executablePath)) {
    console.error(`${executablePath} is missing: install Debian's Chromium (apt-get install chromium)`)
    process.exit(1)
  }
  const executable = buildDemo()
  const { child, base } = await startDemo(executable)
  const busy = await startDemo(executable, { DEMO_TRAFFIC: '1' })
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
      const started = Date.now()
      try {
        await fn({ page, base, traffic: busy.base, problems })
        passed++
        console.log(`  ✓ ${name} (${Date.now() - started} ms)`)
      } catch (error) {
        failed++
        console.log(`  ✗ ${name}\n      ${String(error?.stack ?? error).split('\n').slice(0, 6).join('\n      ')}`)
      } finally {
        await context.close()
      }
    }
  } finally {
    await browser.close()
    for (const c of [child, busy.child]) {
      c.removeAllListeners('exit')
      c.kill('SIGINT')
    }
  }
  console.log(`e2e: ${passed} passed, ${failed} failed`)
  process.exit(failed === 0 ? 0 : 1)
}

await main()

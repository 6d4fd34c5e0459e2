// End-to-end tests of the built site (dist/) in Debian's Chromium, driven by playwright-core.
//
// The site is served by a tiny static server on a free localhost port under /docs/, the way the
// app mounts it. No browser is ever downloaded: CHROMIUM (default /usr/bin/chromium) must exist.
//
//   npm run build && node e2e/run.mjs
//
// Prints one line per test and ends with `e2e: N passed, M failed`; exits 1 on any failure.
// Saves test-results/caching.png (and caching-full.png) for a person to look at.

import { createServer } from 'node:http'
import { existsSync, mkdirSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { extname, join, normalize, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = fileURLToPath(new URL('.', import.meta.url))
const dist = resolve(here, '../dist')
const results = resolve(here, '../test-results')
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium'
const PREFIX = '/docs/'

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
}

/** Serves dist/ under /docs/ on 127.0.0.1 and a free port. */
async function serve() {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    if (path === '/docs') {
      res.writeHead(308, { location: PREFIX }).end()
      return
    }
    if (!path.startsWith(PREFIX)) {
      res.writeHead(404).end('not found')
      return
    }
    const relative = path.slice(PREFIX.length) || 'index.html'
    const file = normalize(join(dist, relative))
    if (!file.startsWith(dist + sep)) {
      res.writeHead(404).end('not found')
      return
    }
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file')
      const body = await readFile(file)
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body)
    } catch {
      res.writeHead(404).end('not found')
    }
  })
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok))
  return { server, base: `http://127.0.0.1:${server.address().port}${PREFIX}` }
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
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`))
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`)
  })
  return problems
}

function assert(condition, message) {
  if (!condition) throw new Error(message)
}

async function h1(page) {
  return (await page.locator('main h1').first().textContent())?.trim()
}

/** The sidebar's links: [title, hash]. The unit tests prove they are exactly the registry. */
async function routes(page) {
  return page
    .locator('aside nav[aria-label="Documentation"] a')
    .evaluateAll((links) => links.map((a) => [a.textContent.trim(), a.getAttribute('href')]))
}

test('every route renders its title, highlighted code and no console error', async ({ page, base, problems }) => {
  await page.goto(base)
  const all = await routes(page)
  assert(all.length >= 8, `expected the registry's pages in the sidebar, found ${all.length}`)
  for (const [title, href] of all) {
    await page.goto(base + href)
    await page.waitForFunction((t) => document.querySelector('main h1')?.textContent?.trim() === t, title)
    assert((await page.title()) === `${title} · Rustforge docs`, `${href}: document title is "${await page.title()}"`)
    const blocks = await page.locator('main pre code').count()
    const highlighted = await page.locator('main pre code .token').count()
    assert(blocks > 0, `${href}: no code block`)
    assert(highlighted > 0, `${href}: code blocks have no Prism token spans`)
    const plain = await page
      .locator('main pre code')
      .evaluateAll((codes) =>
        codes.filter((c) => !c.className.includes('language-text') && !c.querySelector('.token')).length,
      )
    assert(plain === 0, `${href}: ${plain} code block(s) without highlighting`)
  }
  assert(problems.length === 0, problems.join('\n'))
})

test('the empty hash shows the first page', async ({ page, base }) => {
  await page.goto(base)
  const [[first]] = await routes(page)
  assert((await h1(page)) === first, `expected "${first}", got "${await h1(page)}"`)
})

test('sidebar links navigate and the back button returns', async ({ page, base, problems }) => {
  await page.goto(base)
  const first = await h1(page)
  await page.locator('aside nav a', { hasText: /^Caching$/ }).click()
  await page.waitForFunction(() => location.hash === '#/caching')
  assert((await h1(page)) === 'Caching', 'Caching page after clicking its link')
  assert(
    (await page.locator('aside nav a[aria-current="page"]').textContent()) === 'Caching',
    'the sidebar marks the current page',
  )
  await page.locator('aside nav a', { hasText: /^Validation$/ }).click()
  await page.waitForFunction(() => location.hash === '#/validation')
  assert((await h1(page)) === 'Validation', 'Validation page after clicking its link')
  await page.goBack()
  await page.waitForFunction(() => location.hash === '#/caching')
  assert((await h1(page)) === 'Caching', 'back to Caching')
  await page.goBack()
  await page.waitForFunction((t) => document.querySelector('main h1')?.textContent === t, first)
  await page.goForward()
  await page.waitForFunction(() => location.hash === '#/caching')
  assert((await h1(page)) === 'Caching', 'forward to Caching')
  assert(problems.length === 0, problems.join('\n'))
})

test('previous and next links follow the registry order', async ({ page, base }) => {
  await page.goto(base)
  const all = await routes(page)
  await page.goto(base + all[1][1])
  // The hash changes before the new page renders: wait for both, then check the title.
  const shown = ([title, href]) =>
    location.hash === href && document.querySelector('main h1')?.textContent === title
  await page.locator('a[rel="next"]').click()
  await page.waitForFunction(shown, all[2], { timeout: 5000 }).catch(() => {})
  assert((await h1(page)) === all[2][0], `next of ${all[1][0]} is ${all[2][0]}`)
  await page.locator('a[rel="prev"]').click()
  await page.waitForFunction(shown, all[1], { timeout: 5000 }).catch(() => {})
  assert((await h1(page)) === all[1][0], `prev of ${all[2][0]} is ${all[1][0]}`)
})

test('an unknown hash shows the not-found page', async ({ page, base, problems }) => {
  await page.goto(base + '#/definitely-not-a-page')
  assert((await h1(page)) === 'Page not found', `got "${await h1(page)}"`)
  assert(await page.getByText('definitely-not-a-page').isVisible(), 'names the unknown page')
  assert((await page.locator('main a[href="#/caching"]').count()) === 1, 'links to the real pages')
  assert(problems.length === 0, problems.join('\n'))
})

test('Ctrl-K search finds a page by a heading', async ({ page, base, problems }) => {
  await page.goto(base)
  await page.locator('main h1').waitFor() // the app has mounted and listens for the shortcut
  await page.keyboard.press('Control+K')
  const input = page.getByRole('searchbox', { name: 'Search pages and headings' })
  await input.waitFor()
  await input.fill('stale-while')
  const first = page.getByRole('option').first()
  assert((await first.textContent()).includes('flexible: stale-while-revalidate'), `first result: ${await first.textContent()}`)
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => location.hash === '#/caching/flexible')
  assert((await h1(page)) === 'Caching', 'search opened the Caching page')
  await page.waitForFunction(() => {
    const box = document.getElementById('flexible')?.getBoundingClientRect()
    return box && box.top >= 0 && box.top < window.innerHeight
  })
  assert((await page.getByRole('dialog').count()) === 0, 'the dialog closed')
  // Escape closes it again without navigating.
  await page.keyboard.press('Control+K')
  await input.waitFor()
  await page.keyboard.press('Escape')
  assert((await page.getByRole('dialog').count()) === 0, 'Escape closes the dialog')
  assert(problems.length === 0, problems.join('\n'))
})

/** Decodes a PNG screenshot in the page and measures it: size and how many distinct colours. */
async function measurePng(page, png) {
  return page.evaluate(async (b64) => {
    const img = new Image()
    img.src = 'data:image/png;base64,' + b64
    await img.decode()
    const canvas = document.createElement('canvas')
    canvas.width = img.naturalWidth
    canvas.height = img.naturalHeight
    const ctx = canvas.getContext('2d')
    ctx.drawImage(img, 0, 0)
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data
    const colours = new Set()
    for (let i = 0; i < data.length; i += 4 * 7) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2])
    return { width: img.naturalWidth, height: img.naturalHeight, colours: colours.size }
  }, png.toString('base64'))
}

test('screenshots of the Caching page show the rendered page', async ({ page, base }) => {
  mkdirSync(results, { recursive: true })
  await page.goto(base + '#/caching')
  await page.waitForFunction(() => document.querySelector('main h1')?.textContent === 'Caching')
  await page.evaluate(() => document.fonts.ready)
  const top = await page.screenshot({ path: join(results, 'caching.png') })
  const shot = await measurePng(page, top)
  assert(shot.width === 1440 && shot.height === 900, `the screenshot is the viewport: ${JSON.stringify(shot)}`)
  // Text, highlighted code and the sidebar give a page many colours; a blank or unstyled page
  // has a handful.
  assert(shot.colours > 50, `the screenshot shows a rendered, styled page: ${JSON.stringify(shot)}`)

  await page.goto(base + '#/caching/remember')
  await page.waitForFunction(() => {
    const box = document.getElementById('remember')?.getBoundingClientRect()
    return box && box.top >= 0 && box.top < window.innerHeight / 2
  })
  const remember = await page.screenshot({ path: join(results, 'caching-remember.png') })
  assert(!remember.equals(top), 'the #/caching/remember screenshot shows the section, not the top of the page')

  await page.goto(base + '#/caching')
  const full = await page.screenshot({ path: join(results, 'caching-full.png'), fullPage: true })
  const whole = await measurePng(page, full)
  const height = await page.evaluate(() => document.documentElement.scrollHeight)
  assert(whole.height === height && whole.height > 900, `the full-page screenshot is the whole page: ${JSON.stringify(whole)} vs ${height}`)
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
  const { server, base } = await serve()
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  let passed = 0
  let failed = 0
  try {
    for (const { name, fn } of tests) {
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 } })
      const page = await context.newPage()
      page.setDefaultTimeout(10_000)
      const problems = watch(page)
      const started = Date.now()
      try {
        await fn({ page, base, problems })
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
    server.close()
  }
  console.log(`e2e: ${passed} passed, ${failed} failed`)
  process.exit(failed === 0 ? 0 : 1)
}

await main()

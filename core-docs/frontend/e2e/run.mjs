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

/** Pages that show no code block. */
const NO_CODE = new Set(['#/cookbook'])

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
    // The cookbook's overview is a map of the chapters; every other page shows code.
    if (!NO_CODE.has(href)) {
      assert(blocks > 0, `${href}: no code block`)
      assert(highlighted > 0, `${href}: code blocks have no Prism token spans`)
    }
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

/** Opens `href` and waits for its page (its <h1>) to render. */
async function open(page, base, href, title) {
  await page.goto(base + href)
  await page.waitForFunction(
    ([h, t]) => location.hash === h && (!t || document.querySelector('main h1')?.textContent?.trim() === t),
    [href, title],
  )
  await page.locator('main h1').waitFor()
}

/** Elements wider than the viewport's right edge, for a readable failure message. */
async function overflowing(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth
    const out = []
    for (const el of document.querySelectorAll('body *')) {
      const box = el.getBoundingClientRect()
      if (box.right > width + 0.5 && box.width > 0) {
        // Only the outermost culprit: skip elements whose parent is already listed.
        if (out.some((o) => o.el.contains(el))) continue
        out.push({ el, what: `${el.tagName.toLowerCase()}.${String(el.className).slice(0, 60)} right=${Math.round(box.right)}` })
      }
    }
    return out.slice(0, 5).map((o) => o.what)
  })
}

test('at 375 px wide no page scrolls sideways', async ({ page, base, problems }) => {
  await page.setViewportSize({ width: 375, height: 800 })
  await page.goto(base)
  const all = await routes(page)
  for (const [title, href] of all) {
    await open(page, base, href, title)
    const width = await page.evaluate(() => document.documentElement.scrollWidth)
    assert(width <= 375, `${href}: the page is ${width} px wide at 375 px: ${(await overflowing(page)).join('; ')}`)
  }
  // The header's search collapses to an icon that still opens the search.
  const button = page.getByRole('button', { name: 'Search the docs' })
  const box = await button.boundingBox()
  assert(box && box.x + box.width <= 375 && box.width < 60, `the search button fits as an icon: ${JSON.stringify(box)}`)
  await button.click()
  await page.getByRole('searchbox').waitFor()
  const dialog = await page.evaluate(() => document.documentElement.scrollWidth)
  assert(dialog <= 375, `with the search open the page is ${dialog} px wide`)
  assert(problems.length === 0, problems.join('\n'))
})

/** Opens the search with Ctrl-K, types `query` and returns the results' [text, href]. */
async function searchFor(page, query, wanted) {
  await page.locator('main h1').waitFor()
  if ((await page.getByRole('dialog').count()) === 0) await page.keyboard.press('Control+K')
  const input = page.getByRole('searchbox', { name: 'Search pages and headings' })
  await input.waitFor()
  await input.fill(query)
  // The full-text index is built at the first search; wait until it is in use.
  await page.waitForFunction(() => document.querySelector('input[type="search"]')?.getAttribute('aria-busy') === 'false')
  if (wanted) await page.waitForFunction(wanted).catch(() => {})
  return page
    .getByRole('option')
    .locator('a')
    .evaluateAll((links) => links.map((a) => [a.textContent, a.getAttribute('href')]))
}

test('search finds the full text: code identifiers, plain words, hyphenated words', async ({ page, base, problems }) => {
  await page.goto(base)
  const json = await searchFor(page, 'set_json')
  assert(json.some(([, href]) => href.startsWith('#/caching')), `set_json: ${JSON.stringify(json)}`)
  const snippet = await page.getByRole('option').locator('a[href^="#/caching"] mark').first().textContent()
  assert(snippet === 'set_json', `the result shows the match in context, got "${snippet}"`)

  const testing = await searchFor(page, 'testing')
  assert(testing[0]?.[1] === '#/testing', `testing: the Testing page first, got ${JSON.stringify(testing.slice(0, 3))}`)

  // Every page whose text says "fan-out" is found (the cookbook overview does today).
  await page.keyboard.press('Escape')
  const having = []
  for (const [title, href] of await routes(page)) {
    await open(page, base, href, title)
    // The page's own text: not the previous/next links, which name other pages.
    const body = page.locator('main article .prose')
    if ((await body.count()) > 0 && (await body.first().innerText()).toLowerCase().includes('fan-out')) having.push(href)
  }
  assert(having.length > 0, 'some page says "fan-out"')
  const fanOut = await searchFor(page, 'fan-out')
  for (const href of having) {
    assert(
      fanOut.some(([, hit]) => hit === href || hit.startsWith(href + '/')),
      `fan-out: ${href} says it but is not found: ${JSON.stringify(fanOut.map(([, h]) => h))}`,
    )
  }
  // Choosing a body-text result opens its section.
  await searchFor(page, 'set_json')
  await page.getByRole('option').locator('a[href^="#/caching"]').first().click()
  await page.waitForFunction(() => location.hash.startsWith('#/caching/'))
  const id = await page.evaluate(() => location.hash.split('/')[2])
  await page.waitForFunction((heading) => {
    const box = document.getElementById(heading)?.getBoundingClientRect()
    return box && box.top >= 0 && box.top < window.innerHeight
  }, id)
  assert(problems.length === 0, problems.join('\n'))
})

test('back returns to where the reader was on the page', async ({ page, base, problems }) => {
  await open(page, base, '#/caching', 'Caching')
  await page.evaluate(() => window.scrollTo(0, 2500))
  await page.waitForFunction(() => Math.abs(window.scrollY - 2500) < 2)
  await page.waitForTimeout(100)
  await page.locator('aside nav a', { hasText: /^Validation$/ }).click()
  await page.waitForFunction(() => location.hash === '#/validation' && document.querySelector('main h1')?.textContent === 'Validation')
  assert((await page.evaluate(() => window.scrollY)) === 0, 'a new page opens at its top')
  await page.evaluate(() => window.scrollTo(0, 600))
  await page.waitForTimeout(100)
  await page.goBack()
  await page.waitForFunction(() => document.querySelector('main h1')?.textContent === 'Caching')
  await page.waitForTimeout(100)
  const back = await page.evaluate(() => window.scrollY)
  assert(Math.abs(back - 2500) <= 4, `back: scrollY is ${back}, expected 2500`)
  await page.goForward()
  await page.waitForFunction(() => document.querySelector('main h1')?.textContent === 'Validation')
  await page.waitForTimeout(100)
  const forward = await page.evaluate(() => window.scrollY)
  assert(Math.abs(forward - 600) <= 4, `forward: scrollY is ${forward}, expected 600`)
  // A reload keeps the entry's position too.
  await page.reload()
  await page.waitForFunction(() => document.querySelector('main h1')?.textContent === 'Validation')
  await page.waitForFunction(() => Math.abs(window.scrollY - 600) <= 4, null, { timeout: 3000 }).catch(() => {})
  const reloaded = await page.evaluate(() => window.scrollY)
  assert(Math.abs(reloaded - 600) <= 4, `reload: scrollY is ${reloaded}, expected 600`)
  assert(problems.length === 0, problems.join('\n'))
})

test('"On this page" marks the section being read', async ({ page, base, problems }) => {
  await open(page, base, '#/caching', 'Caching')
  const toc = page.locator('nav[aria-label="On this page"]')
  assert(await toc.isVisible(), 'the list shows at 1440 px')
  const ids = await toc.locator('a').evaluateAll((links) => links.map((a) => a.getAttribute('href').split('/')[2]))
  for (const id of [ids[3], ids[ids.length - 5], ids[1]]) {
    await page.evaluate((heading) => document.getElementById(heading).scrollIntoView(), id)
    await page
      .waitForFunction(
        (href) => document.querySelector('nav[aria-label="On this page"] a[aria-current="true"]')?.getAttribute('href') === href,
        `#/caching/${id}`,
        { timeout: 3000 },
      )
      .catch(() => {})
    const current = await toc.locator('a[aria-current="true"]').evaluateAll((links) => links.map((a) => a.getAttribute('href')))
    assert(current.length === 1 && current[0] === `#/caching/${id}`, `scrolled to ${id}, marked: ${JSON.stringify(current)}`)
  }
  assert(problems.length === 0, problems.join('\n'))
})

test('copy buttons are always visible, never cover code, and copy', async ({ page, base, problems }) => {
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(base).origin })
  await page.goto(base)
  let checked = 0
  let oneLine = null
  for (const [title, href] of await routes(page)) {
    await open(page, base, href, title)
    const report = await page.evaluate(() => {
      const bad = []
      let single = -1
      document.querySelectorAll('main figure.code-block').forEach((figure, i) => {
        const button = figure.querySelector('button')
        const pre = figure.querySelector('pre')
        const code = pre.querySelector('code')
        const style = getComputedStyle(button)
        if (style.opacity !== '1' || style.visibility !== 'visible') bad.push(`block ${i}: the button is hidden (${style.opacity})`)
        const range = document.createRange()
        range.selectNodeContents(code)
        const text = range.getBoundingClientRect()
        const clip = pre.getBoundingClientRect()
        // The text as the reader sees it: clipped by the scrolling <pre>.
        const seen = {
          left: Math.max(text.left, clip.left),
          right: Math.min(text.right, clip.right),
          top: Math.max(text.top, clip.top),
          bottom: Math.min(text.bottom, clip.bottom),
        }
        const b = button.getBoundingClientRect()
        const overlap = b.left < seen.right && b.right > seen.left && b.top < seen.bottom && b.bottom > seen.top
        if (overlap) bad.push(`block ${i}: the button covers the code`)
        if (single < 0 && !code.textContent.trim().includes('\n')) single = i
      })
      return { bad, count: document.querySelectorAll('main figure.code-block').length, single }
    })
    assert(report.bad.length === 0, `${href}: ${report.bad.join('; ')}`)
    checked += report.count
    if (!oneLine && report.single >= 0) oneLine = [title, href, report.single]
  }
  assert(checked > 10, `checked ${checked} code blocks`)
  assert(oneLine, 'some page has a one-line code block')
  const [title, href, index] = oneLine
  await open(page, base, href, title)
  const figure = page.locator('main figure.code-block').nth(index)
  await figure.scrollIntoViewIfNeeded()
  const expected = await figure.locator('pre code').textContent()
  await figure.getByRole('button').click()
  await figure.getByRole('button', { name: 'Copied' }).waitFor()
  const copied = await page.evaluate(() => navigator.clipboard.readText())
  assert(copied === expected, `copied ${JSON.stringify(copied)}, expected ${JSON.stringify(expected)}`)
  assert(problems.length === 0, problems.join('\n'))
})

/** WCAG contrast of an element's text against what is painted behind it. */
async function contrastOf(locator) {
  return locator.evaluate((el) => {
    const canvas = document.createElement('canvas')
    canvas.width = canvas.height = 1
    const ctx = canvas.getContext('2d', { willReadFrequently: true })
    const rgba = (css) => {
      ctx.clearRect(0, 0, 1, 1)
      ctx.fillStyle = '#000'
      ctx.fillStyle = css
      ctx.fillRect(0, 0, 1, 1)
      const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data
      return [r, g, b, a / 255]
    }
    // Composite the backgrounds from the root down to the element.
    const chain = []
    for (let node = el; node; node = node.parentElement) chain.unshift(getComputedStyle(node).backgroundColor)
    let bg = [255, 255, 255]
    for (const css of chain) {
      const [r, g, b, a] = rgba(css)
      bg = [r * a + bg[0] * (1 - a), g * a + bg[1] * (1 - a), b * a + bg[2] * (1 - a)]
    }
    const [r, g, b, a] = rgba(getComputedStyle(el).color)
    const fg = [r * a + bg[0] * (1 - a), g * a + bg[1] * (1 - a), b * a + bg[2] * (1 - a)]
    const lum = ([R, G, B]) => {
      const f = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)
      return 0.2126 * f(R) + 0.7152 * f(G) + 0.0722 * f(B)
    }
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x)
    return { ratio: (hi + 0.05) / (lo + 0.05), background: lum(bg) }
  })
}

async function readable(page, where) {
  const checks = [
    ['h1', page.locator('main h1').first()],
    ['summary', page.locator('main article > p').nth(1)],
    ['body text', page.locator('main .prose p').first()],
    ['inline code', page.locator('main .prose p code').first()],
    ['table cell', page.locator('main .prose td').first()],
    ['callout', page.locator('main aside').first()],
    ['sidebar link', page.locator('aside nav a:not([aria-current])').first()],
  ]
  for (const [name, locator] of checks) {
    if ((await locator.count()) === 0) continue
    const { ratio } = await contrastOf(locator)
    assert(ratio >= 4.5, `${where}: ${name} has a contrast of ${ratio.toFixed(2)} (at least 4.5 needed)`)
  }
}

const isDark = (page) => page.evaluate(() => document.documentElement.classList.contains('dark'))
const bodyBackground = async (page) => (await contrastOf(page.locator('body'))).background

test('dark mode follows the system, the toggle switches it and is remembered', async ({ page, base, problems }) => {
  await page.emulateMedia({ colorScheme: 'dark' })
  await open(page, base, '#/caching', 'Caching')
  assert(await isDark(page), 'a dark system gives the dark theme')
  assert((await bodyBackground(page)) < 0.05, `the page background is dark: ${await bodyBackground(page)}`)
  for (const [title, href] of await routes(page)) {
    await open(page, base, href, title)
    await readable(page, `dark ${href}`)
  }
  await open(page, base, '#/configuration', 'Configuration')

  const toggle = page.getByRole('button', { name: 'Dark mode' })
  assert((await toggle.getAttribute('aria-pressed')) === 'true', 'the toggle shows dark')
  await toggle.click()
  assert(!(await isDark(page)), 'the toggle switches to light')
  assert((await bodyBackground(page)) > 0.9, 'the page background is light')
  await readable(page, 'light Configuration')
  await page.reload()
  await page.locator('main h1').waitFor()
  assert(!(await isDark(page)), 'light survives a reload on a dark system')
  await toggle.click()
  assert(await isDark(page), 'and back to dark')
  await page.reload()
  await page.locator('main h1').waitFor()
  assert(await isDark(page), 'dark survives a reload')
  assert(problems.length === 0, problems.join('\n'))
})

test('the theme is applied before the app runs (no flash of the wrong theme)', async ({ page, base }) => {
  await page.emulateMedia({ colorScheme: 'dark' })
  // Without the app's script only index.html's inline script can set the class.
  await page.route('**/assets/*.js', (route) => route.abort())
  await page.goto(base)
  assert(await isDark(page), 'index.html sets the dark class by itself')
  assert((await bodyBackground(page)) < 0.05, 'and the background is dark before the app renders')
  await page.emulateMedia({ colorScheme: 'light' })
  await page.goto(base + '?light')
  assert(!(await isDark(page)), 'a light system gives light')
})

test('every Cookbook route opens; chapters are steps and a decision rule', async ({ page, base, problems }) => {
  await page.goto(base)
  const cookbook = await page
    .locator('aside nav[aria-label="Documentation"] > div')
    .filter({ has: page.locator('p', { hasText: /^Cookbook$/ }) })
    .locator('a')
    .evaluateAll((links) => links.map((a) => [a.textContent.trim(), a.getAttribute('href')]))
  assert(cookbook.length >= 1 && cookbook[0][1] === '#/cookbook', `the Cookbook section: ${JSON.stringify(cookbook)}`)
  for (const [title, href] of cookbook) {
    await open(page, base, href, title)
    if (!title.startsWith('Chapter')) continue
    const ids = await page.locator('main article h2').evaluateAll((hs) => hs.map((h) => h.id))
    assert(ids.length >= 2, `${href}: headings ${JSON.stringify(ids)}`)
    ids.slice(0, -1).forEach((id, i) => assert(id === `step-${i}`, `${href}: heading ${i} is "${id}", expected step-${i}`))
    assert(ids.at(-1) === 'decision-rule', `${href}: the last heading is "${ids.at(-1)}", expected decision-rule`)
  }
  assert(problems.length === 0, problems.join('\n'))
})

test('every in-page link leads to a page that renders', async ({ page, base, problems }) => {
  await page.goto(base)
  const targets = new Map()
  for (const [title, href] of await routes(page)) {
    await open(page, base, href, title)
    const links = await page.locator('main a[href^="#/"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')))
    for (const link of links) if (!targets.has(link)) targets.set(link, href)
  }
  assert(targets.size > 20, `found ${targets.size} links`)
  for (const [link, from] of targets) {
    await page.goto(base + link)
    await page.waitForFunction((h) => location.hash === h, link)
    await page.locator('main h1').waitFor()
    const heading = await h1(page)
    assert(heading !== 'Page not found', `${from} links to ${link}, which is not a page`)
    const id = link.split('/')[2]
    if (id) {
      const exists = await page.evaluate((i) => document.getElementById(decodeURIComponent(i)) !== null, id)
      assert(exists, `${from} links to ${link}: ${heading} has no #${id}`)
    }
  }
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

// Prism highlights `code[class*=language-]` on its own when the page loads unless told not to;
// the site highlights strings itself. This module must be imported before prismjs.
const scope = globalThis as unknown as { Prism?: { manual?: boolean } }
scope.Prism = { ...(scope.Prism ?? {}), manual: true }
export {}

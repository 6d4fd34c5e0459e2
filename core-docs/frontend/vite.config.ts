/// <reference types="vitest/config" />
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
import tailwindcss from '@tailwindcss/vite'

// The workspace root: pages import the Rust snippets in core-docs/snippets (`?raw`) and the
// framework's own message catalogs (core-web/i18n) from outside this directory.
const workspace = fileURLToPath(new URL('../..', import.meta.url))

export default defineConfig({
  // Relative asset paths: the site is served from any prefix (`/docs/` in the app) or a file host.
  base: './',
  plugins: [react(), tailwindcss()],
  server: {
    fs: { allow: [workspace] },
  },
  build: {
    chunkSizeWarningLimit: 1000,
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['./src/test-setup.ts'],
    // Rendering every page with highlighted code takes a few seconds on a busy 2-core machine.
    testTimeout: 30_000,
  },
})

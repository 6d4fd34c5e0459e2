/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
import tailwindcss from '@tailwindcss/vite'

export default defineConfig({
  // Relative asset paths: the dashboard is mounted under any prefix (`/admin/jobs/` in the app).
  base: './',
  plugins: [react(), tailwindcss()],
  build: {
    // The page's content security policy allows no inline script: keep Vite's preload helper in
    // the bundle rather than in index.html.
    modulePreload: { polyfill: false },
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.{ts,tsx}'],
  },
})

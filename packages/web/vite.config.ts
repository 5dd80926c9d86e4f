// Builds the console into dist/ (served by uptide-server at /). React's JSX is
// compiled by Vite's own oxc transform: no React plugin, since all it would
// add is Fast Refresh in `vite` dev mode.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'react' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsDir: 'assets',
    reportCompressedSize: false,
  },
  server: {
    host: '127.0.0.1',
    // `npm run dev -w @uptide/web` next to `npm start`: the API calls go to the running server.
    proxy: { '/api': process.env['UPTIDE_SERVER'] ?? 'http://127.0.0.1:8080' },
  },
});

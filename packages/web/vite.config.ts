// Builds the console into dist/ (served by uptide-server at /). React's JSX is
// compiled by Vite's own oxc transform: no React plugin, since all it would
// add is Fast Refresh in `vite` dev mode.
import { defineConfig } from 'vite';

export default defineConfig(({ command }) => ({
  root: import.meta.dirname,
  // A production build whatever NODE_ENV says (vitest sets "test" when a test builds the console): React's
  // production runtime, and JSX compiled for it.
  define: { 'process.env.NODE_ENV': JSON.stringify(command === 'build' ? 'production' : 'development') },
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'react', development: command !== 'build' } },
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
}));

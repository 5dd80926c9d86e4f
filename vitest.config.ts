import { defineConfig } from 'vitest/config';

// Tests import workspace packages from their TypeScript sources (the
// "@uptide/source" export condition), so `vitest` needs no build; tests that
// spawn real processes use the built `dist/` that `npm test` makes first.
export default defineConfig({
  resolve: {
    conditions: ['@uptide/source', 'node'],
  },
  ssr: {
    resolve: {
      conditions: ['@uptide/source', 'node'],
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});

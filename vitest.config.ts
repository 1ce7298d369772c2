import { defineConfig } from 'vitest/config';
import SummaryReporter from './test/summary-reporter.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // year-less syslog stamps are local time: pin the zone so fixtures mean one instant
    env: { TZ: 'UTC' },
    testTimeout: 30_000,
    reporters: ['default', new SummaryReporter()],
  },
});

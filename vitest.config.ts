import { defineConfig } from 'vitest/config';
import SummaryReporter from './test/summary-reporter.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // year-less syslog stamps are local time: pin the zone so fixtures mean one instant
    env: { TZ: 'UTC' },
    // a test that takes 20 s on a quiet 2-core machine takes 40-60 s on a busy one: the limit is for hangs, not speed
    testTimeout: 120_000,
    reporters: ['default', new SummaryReporter()],
  },
});

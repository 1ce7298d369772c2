#!/usr/bin/env node
// the build's bundle (dist/bundle): one file to load instead of ~90 modules, ~70 ms less per cron run
import '../dist/bundle/main.js';

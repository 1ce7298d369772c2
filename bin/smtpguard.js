#!/usr/bin/env -S node --max-semi-space-size=4
// a young generation of 4 MiB a half (V8 grows it to 16): a scan's garbage dies young, and a
// smaller one is as fast and keeps ~20 MiB less resident (README "Memory")
import { setFlagsFromString } from 'node:v8';
// the old generation may grow by 30% of what the last full collection kept, not by up to 4x (V8's
// own factor): a flood of 199,000 offenders peaked at 481-578 MiB, mostly the policy's garbage, and
// at 334-351 with it, ~12% slower there and no slower elsewhere (README "Memory"). Set here, not on the #! line,
// which the .deb turns into `#!/usr/bin/node FLAG`: one argument; the flag is read at each collection
setFlagsFromString('--heap-growing-percent=30');
// the build's bundle (dist/bundle): one file to load instead of ~90 modules, ~70 ms less per cron run
await import('../dist/bundle/main.js');

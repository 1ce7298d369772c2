/**
 * The entry point bin/smtpguard.js loads. `--version` answers here, before any
 * heavy module is loaded; everything else goes to cli.ts.
 */
import { version } from './version.js';

// `smtpguard run --help | head`: the reader went away; stop quietly, as a shell tool does
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(0);
  });
}

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${version()}\n`);
} else {
  const { main } = await import('./cli/cli.js');
  await main(args);
}

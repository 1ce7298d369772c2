/**
 * The machine password and the bouncer key (edge): read from files only root can read
 * (and whose directory only root can write), like sshd with its host keys. A secret others
 * can read is refused, naming the setting and the fix. A file of one line holds the secret;
 * a credentials file as `cscli machines add -f FILE` writes it gives its `password:`.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { SmtpguardError } from '../errors.js';
import { checkTrustedPaths } from '../trust.js';

/** `setting`: how the admin names it, e.g. `--crowdsec-password-file`. */
export async function readSecretFile(file: string, setting: string, uid = process.getuid?.() ?? -1): Promise<string> {
  await checkTrustedPaths([{ path: path.dirname(path.resolve(file)), what: `the directory of ${setting}` }], uid);
  const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw new SmtpguardError(`${setting} ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`, {
      hint: `create it (mode 600, owned by root) or fix ${setting}`,
      cause: error,
    });
  });
  if (!info.isFile()) throw new SmtpguardError(`${setting} ${file} is not a regular file`, { hint: `point ${setting} at the file that holds the secret` });
  const owner = uid === -1 ? info.uid : uid;
  if (info.uid !== owner || (info.mode & 0o077) !== 0) {
    const who = info.uid !== owner ? `owned by uid ${info.uid}` : `readable or writable by others (mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')})`;
    throw new SmtpguardError(`${setting} ${file} is ${who}: a CrowdSec secret must be root's alone`, {
      hint: `run "chown root:root ${file} && chmod 600 ${file}"`,
    });
  }
  const text = await readFile(file, 'utf8');
  // the credentials file `cscli machines add -f FILE` writes (url, login, password) is taken as it is
  const yaml = /^password:[ \t]*(\S.*?)[ \t]*$/m.exec(text);
  const secret = (yaml === null ? text : yaml[1]!.replace(/^(['"])(.*)\1$/, '$2')).trim();
  if (secret === '' || /[\r\n]/.test(secret)) {
    throw new SmtpguardError(`${setting} ${file} ${secret === '' ? 'is empty' : 'holds more than one line'}`, { hint: 'put the secret alone on one line' });
  }
  return secret;
}

/** Checks of text that smtpguard writes into files others read. Pure. */

/**
 * Every setting may end up in a generated file (the cron line, a systemd unit, the config
 * file, a firewall or save file): a newline there is a second cron line or an `ExecStartPre=`.
 * So no value holds a control character; checked once, where settings are read.
 */
export function controlCharacterProblem(text: string): string | null {
  // eslint-disable-next-line no-control-regex
  const at = text.search(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
  if (at === -1) return null;
  const code = text.charCodeAt(at);
  return `holds a control character (U+${code.toString(16).toUpperCase().padStart(4, '0')}${code === 10 ? ', a newline' : code === 9 ? ', a tab' : ''}) at character ${at + 1}: no setting may, since they are written into the cron line, units and config files`;
}


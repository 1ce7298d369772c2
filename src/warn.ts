/** How every stage says something went wrong without stopping: one line to stderr (and to syslog from cron). */
export type Warn = (message: string) => void;

/**
 * The record layout of a tally's pools (tally.ts), shared with its codec and thread transfer:
 * a bucket (one address, one minute) and a user record (one address and username, one minute).
 */

// Usernames: one chain of records per (address, username), newest minute first, in a pool of
// their own: the next record, the minute, SASL failures that named the user, logins as the user.
export const U_NEXT = 0;
export const U_KEY = 1;
export const U_FAILURES = 2;
export const U_LOGINS = 3;
export const U_STRIDE = 4;

// A bucket (one address, one minute) is a record of STRIDE int32s in one pool:
// the next (older) bucket of the same address, the minute, the first and last event as
// ms into the minute, then two count pairs and the record that holds more pairs (+1; 0:
// none). A pair is (slot + 1) << 26 | count (0: empty): a minute of one address nearly
// always has one or two kinds, so 28 bytes a bucket instead of one count per kind (88).
// Each address has a chain of buckets, newest first, so a log read in time order only
// ever touches the head, and a window is cut by walking from the head until the minutes
// are older than the window.
export const NEXT = 0;
export const KEY = 1;
export const FIRST = 2;
export const LAST = 3;
export const PAIR0 = 4;
export const PAIR1 = 5;
export const MORE = 6;
export const STRIDE = 7;
export const NONE = -1;
export const COUNT_BITS = 26;
export const COUNT_MAX = 2 ** COUNT_BITS - 1;


/** One UTC day in minutes (the scan state keeps a log's tally per day). */
export const MINUTES_PER_DAY = 1440;

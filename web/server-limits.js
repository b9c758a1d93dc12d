// The server's configured limits as its `ready` frame states them
// (`max_text_bytes`, `edit_window_secs`, `delete_window_secs`): the composer
// checks texts against them and the message menu offers "Edit" and "Delete
// for everyone" only while the server would accept them. Until a `ready`
// arrives (or from an older server) the protocol's defaults hold.

import { DEFAULT_MAX_TEXT_BYTES } from './protocol.js';

/** The server's defaults (`crates/parley-server/src/config.rs`). */
const DEFAULTS = { maxTextBytes: DEFAULT_MAX_TEXT_BYTES, editWindowSecs: 900, deleteWindowSecs: 172800 };

let limits = { ...DEFAULTS };

/** Take the limits a `ready` frame carries (absent fields keep their value). @param {any} f */
export function applyReady(f) {
  const pos = (/** @type {unknown} */ v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (pos(f.max_text_bytes) && f.max_text_bytes > 0) limits.maxTextBytes = f.max_text_bytes;
  if (pos(f.edit_window_secs)) limits.editWindowSecs = f.edit_window_secs;
  if (pos(f.delete_window_secs)) limits.deleteWindowSecs = f.delete_window_secs;
}

/** Back to the defaults (log out: another server or user may follow). */
export function reset() { limits = { ...DEFAULTS }; }

/** The longest text a message may carry, in UTF-8 bytes. */
export function maxTextBytes() { return limits.maxTextBytes; }

/** Whether a message sent at `sentAtMs` may still be edited by its sender. @param {number} sentAtMs */
export function withinEditWindow(sentAtMs) {
  return Date.now() - sentAtMs < limits.editWindowSecs * 1000;
}

/** Whether a message sent at `sentAtMs` may still be deleted for everyone by its sender. @param {number} sentAtMs */
export function withinDeleteWindow(sentAtMs) {
  return Date.now() - sentAtMs < limits.deleteWindowSecs * 1000;
}

// Client-side persistence in localStorage: the session, the per-user inbox
// cursor, the per-user outbox, the per-user drafts, the messages the user
// deleted for themself, the theme, the alert switches, the last conversation
// list (the offline shell shows it) and a small cache of usernames.
//
// Everything is best effort: a browser that refuses storage (private mode,
// quota) still works, it just forgets on reload.

/** @typedef {{token: string, user_id: string, device_id: string, username: string}} StoredSession */
/**
 * A message typed by the user that the server has not acknowledged yet
 * (a reply when `reply_to_seq` is set). `failed` holds an error code when
 * the server refused it for good. A photo, video, voice note or file has a
 * media `kind` and `media` (its file's type, size and name, and its
 * `media_id` once uploaded; the file itself waits in IndexedDB, `media.js`);
 * `text` is then its caption.
 * @typedef {{client_msg_id: string, conversation_id: string, text: string,
 *   created_ms: number, reply_to_seq?: number, failed?: string, kind?: string,
 *   media?: {media_id?: string, content_type: string, size: number, filename?: string, width?: number, height?: number}}} OutboxItem
 */

const KEY_SESSION = 'parley.session';
const keyCursor = (/** @type {string} */ uid) => `parley.cursor.${uid}`;
const keyOutbox = (/** @type {string} */ uid) => `parley.outbox.${uid}`;
const keyDrafts = (/** @type {string} */ uid) => `parley.drafts.${uid}`;
const keyHidden = (/** @type {string} */ uid) => `parley.hidden.${uid}`;
const KEY_USERS = 'parley.users';
const KEY_THEME = 'parley.theme';

/** @param {string} key */
function read(key) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? null : JSON.parse(raw);
  } catch {
    return null;
  }
}

/** @param {string} key @param {unknown} value */
function write(key, value) {
  try {
    if (value === null || value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage unavailable or full: keep working from memory */
  }
}

/** @returns {StoredSession|null} */
export function loadSession() {
  const s = read(KEY_SESSION);
  return s && typeof s.token === 'string' && typeof s.user_id === 'string' ? s : null;
}

/** @param {StoredSession|null} s */
export function saveSession(s) { write(KEY_SESSION, s); }

/** @param {string} uid @returns {number|null} */
export function loadCursor(uid) {
  const c = read(keyCursor(uid));
  return typeof c === 'number' && Number.isFinite(c) ? c : null;
}

/** @param {string} uid @param {number|null} cursor */
export function saveCursor(uid, cursor) { write(keyCursor(uid), cursor); }

/** @param {string} uid @returns {OutboxItem[]} */
export function loadOutbox(uid) {
  const o = read(keyOutbox(uid));
  return Array.isArray(o) ? o.filter((x) => x && x.client_msg_id && x.conversation_id) : [];
}

/** @param {string} uid @param {OutboxItem[]} items */
export function saveOutbox(uid, items) {
  write(keyOutbox(uid), items.length ? items.map(({ client_msg_id, conversation_id, text, created_ms, reply_to_seq, failed, kind, media }) => (
    { client_msg_id, conversation_id, text, created_ms, reply_to_seq, failed, kind, media })) : null);
}

/** @returns {Record<string, {user_id: string, username: string, display_name?: string, avatar_media_id?: string}>} */
export function loadUserCache() {
  const u = read(KEY_USERS);
  return u && typeof u === 'object' ? u : {};
}

/** @param {Record<string, {user_id: string, username: string}>} users */
export function saveUserCache(users) {
  // Keep the cache small: the most recent 500 entries are plenty.
  const entries = Object.entries(users);
  write(KEY_USERS, Object.fromEntries(entries.slice(-500)));
}

/** Unsent composer texts by conversation id. @param {string} uid @returns {Record<string, string>} */
export function loadDrafts(uid) {
  const d = read(keyDrafts(uid));
  return d && typeof d === 'object' ? d : {};
}

/** @param {string} uid @param {Record<string, string>|null} drafts */
export function saveDrafts(uid, drafts) {
  write(keyDrafts(uid), drafts && Object.keys(drafts).length ? drafts : null);
}

/** Messages deleted "for me": `<conversation_id>:<seq>` keys. @param {string} uid @returns {string[]} */
export function loadHidden(uid) {
  const h = read(keyHidden(uid));
  return Array.isArray(h) ? h.filter((x) => typeof x === 'string') : [];
}

/** @param {string} uid @param {string[]} keys */
export function saveHidden(uid, keys) {
  // The newest 5,000 are plenty; older ones are long out of view.
  write(keyHidden(uid), keys.length ? keys.slice(-5000) : null);
}

/** The chosen theme (this browser, whoever is signed in). @returns {'system'|'light'|'dark'} */
export function loadTheme() {
  const t = read(KEY_THEME);
  return t === 'light' || t === 'dark' ? t : 'system';
}

/** @param {'system'|'light'|'dark'} theme */
export function saveTheme(theme) { write(KEY_THEME, theme === 'system' ? null : theme); }

const KEY_ALERTS = 'parley.alerts';
const keyConvList = (/** @type {string} */ uid) => `parley.convs.${uid}`;

/** The last `GET /v1/conversations` items (shown on a reload while offline). @param {string} uid @returns {any[]} */
export function loadConvList(uid) {
  const l = read(keyConvList(uid));
  return Array.isArray(l) ? l.filter((x) => x && typeof x.conversation_id === 'string') : [];
}

/** @param {string} uid @param {any[]|null} items */
export function saveConvList(uid, items) {
  // The newest 200 chats are what a reload without a server shows.
  write(keyConvList(uid), items && items.length ? items.slice(0, 200) : null);
}

/** Local alert switches (this browser): desktop notifications (off until asked) and sounds (on). @returns {{notifications: boolean, sounds: boolean}} */
export function loadAlertPrefs() {
  const a = read(KEY_ALERTS) || {};
  return { notifications: a.notifications === true, sounds: a.sounds !== false };
}

/** @param {{notifications: boolean, sounds: boolean}} prefs */
export function saveAlertPrefs(prefs) { write(KEY_ALERTS, prefs); }

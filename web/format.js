// Pure helpers: human error sentences, times, names. No DOM, no state.

/**
 * A clear, human sentence for every error code of the spec (§1), plus the
 * client-side `network` code. `context` lets a screen say something more
 * precise ("No user called …" instead of "not found").
 * @param {string} code
 * @param {{context?: string, retryAfterMs?: number, subject?: string}} [opts]
 */
export function errorText(code, opts = {}) {
  const { context, retryAfterMs, subject } = opts;
  switch (code) {
    case 'bad_request':
      if (context === 'register') return 'That username or password isn’t allowed. Usernames use 3–32 lowercase letters, digits, “_” or “.”; passwords need at least 8 characters.';
      return 'The server didn’t accept that request. Please check what you entered.';
    case 'unauthorized':
      if (context === 'login') return 'Wrong username or password.';
      return 'Your session has ended. Please log in again.';
    case 'forbidden':
      if (context === 'register') return 'Registration is closed on this server.';
      if (context === 'send' || context === 'media') return 'You can’t send messages in this chat any more.';
      if (context === 'event') return 'That message can’t be changed any more.';
      if (context === 'group') return 'Only group admins can do that.';
      return 'You’re not allowed to do that.';
    case 'not_found':
      if (context === 'user') return subject ? `There’s no user called “${subject}”.` : 'There’s no such user.';
      if (context === 'event') return 'That message is no longer there.';
      return 'That chat or user no longer exists.';
    case 'conflict':
      if (context === 'register') return 'That username is already taken. Try another one.';
      return 'That conflicts with something that already exists.';
    case 'payload_too_large':
      if (context === 'send') return 'That message is too long to send. Try splitting it up.';
      if (context === 'media') return 'That file is too large to send (or over your storage quota).';
      if (context === 'group') return 'That group would have too many members.';
      return 'That’s too large for the server to accept.';
    case 'rate_limited': {
      const secs = retryAfterMs ? Math.max(1, Math.ceil(retryAfterMs / 1000)) : 0;
      return secs
        ? `You’re sending too fast. Trying again in ${secs} s.`
        : 'You’re going too fast. Please wait a moment and try again.';
    }
    case 'resync_required':
      return 'You were away for a while. Reloading your chats…';
    case 'unavailable':
      return 'The server is busy or restarting. Please try again in a moment.';
    case 'internal':
      return 'Something went wrong on the server. Please try again.';
    case 'network':
      return 'Can’t reach the server. Check your connection and try again.';
    case 'unsupported_media_type':
      return 'That file isn’t what its type says, or this server doesn’t accept that kind of file.';
    case 'file_lost':
      return 'The file of this message is no longer on this device. Attach it again.';
    case 'upload_failed':
      return 'The file couldn’t be uploaded. Please try again.';
    default:
      return 'Something went wrong. Please try again.';
  }
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const longDateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'long', year: 'numeric' });

/** @param {number} ms */
function startOfDay(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** @param {number} ms */
function daysAgo(ms) {
  return Math.round((startOfDay(Date.now()) - startOfDay(ms)) / 86400000);
}

/** Time of a message bubble: "14:05". @param {number} ms */
export function clockTime(ms) {
  return timeFmt.format(new Date(ms));
}

/** Time in the conversation list: today "14:05", "Yesterday", "Tue", "3 Nov". @param {number} ms */
export function listTime(ms) {
  if (!ms) return '';
  const days = daysAgo(ms);
  if (days <= 0) return clockTime(ms);
  if (days === 1) return 'Yesterday';
  if (days < 7) return weekdayFmt.format(new Date(ms));
  return dateFmt.format(new Date(ms));
}

/** Date separator in a chat: "Today", "Yesterday", "3 November 2026". @param {number} ms */
export function dayLabel(ms) {
  const days = daysAgo(ms);
  if (days <= 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return longDateFmt.format(new Date(ms));
}

/** @param {number} ms */
export function dayKey(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/**
 * Header presence text: "online", "last seen just now", "last seen today at 14:05"…
 * Empty when the user hides their presence.
 * @param {{online: boolean, last_seen_ms?: number}|null|undefined} p
 */
export function presenceText(p) {
  if (!p) return '';
  if (p.online) return 'online';
  if (!p.last_seen_ms) return '';
  const ago = Date.now() - p.last_seen_ms;
  if (ago < 60000) return 'last seen just now';
  if (ago < 3600000) {
    const mins = Math.floor(ago / 60000);
    return `last seen ${mins} minute${mins === 1 ? '' : 's'} ago`;
  }
  const days = daysAgo(p.last_seen_ms);
  if (days <= 0) return `last seen today at ${clockTime(p.last_seen_ms)}`;
  if (days === 1) return `last seen yesterday at ${clockTime(p.last_seen_ms)}`;
  return `last seen ${dateFmt.format(new Date(p.last_seen_ms))} at ${clockTime(p.last_seen_ms)}`;
}

/** The user-perceived characters of `s` (an emoji or a letter with its accents is one). @param {string} s */
export function graphemes(s) {
  if (typeof Intl !== 'undefined' && Intl.Segmenter) {
    return [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(s)].map((x) => x.segment);
  }
  return [...s];
}

/** Initials for an avatar: whole graphemes, never half an emoji or a letter without its accent. @param {string} name */
export function initials(name) {
  const text = String(name || '?');
  const parts = text.split(/[\s._]+/).filter(Boolean);
  const letters = parts.length >= 2
    ? graphemes(parts[0])[0] + graphemes(parts[1])[0]
    : graphemes(parts[0] || text).slice(0, 2).join('');
  return letters.toUpperCase();
}

/** A stable hue for a name, for avatar colours. @param {string} name */
export function hueFor(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

/** Split "alice, bob  carol" into usernames. @param {string} s */
export function parseUsernames(s) {
  return [...new Set(String(s).split(/[\s,;]+/).map((x) => normalizeUsername(x)).filter(Boolean))];
}

/** Usernames are lowercase on the server; be forgiving about case and "@". @param {string} s */
export function normalizeUsername(s) {
  return String(s || '').trim().replace(/^@/, '').toLowerCase();
}

/** UTF-8 byte length. @param {string} s */
export function byteLength(s) {
  // Counted without allocating: the composer asks on every keystroke.
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

/** A fresh client_msg_id. */
export function newClientMsgId() {
  if (crypto.randomUUID) return `web-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

// The wire protocol as the web client speaks it: the only module that builds
// client frames (the JSON objects sent over the WebSocket) and encodes or
// decodes them, and the home of the protocol's constants.
//
// The constants mirror `crates/parley-proto` (`close_code.rs`, `limits.rs`);
// tests/web/unit.test.mjs fails when they drift apart. No DOM, no state.

// --- close codes (crates/parley-proto/src/close_code.rs) --------------------

/** The token was revoked (logout) or never valid: log in again. */
export const CLOSE_UNAUTHORIZED = 4001;
/** The socket's queue overflowed; reconnect and catch up by cursor. */
export const CLOSE_TOO_SLOW = 4008;
/** The server is shutting down; reconnect (after the `reconnect` delay). */
export const CLOSE_GOING_AWAY = 1001;
/** A frame over the server's `max_frame_bytes`. */
export const CLOSE_TOO_BIG = 1009;
/** Nothing received for two heartbeat intervals, or no auth in time. The client closes with it too. */
export const CLOSE_TIMEOUT = 4000;
/** A text frame that was not valid UTF-8 (RFC 6455: invalid frame payload data). */
export const CLOSE_INVALID_PAYLOAD = 1007;
/** Any other WebSocket protocol violation (RFC 6455: protocol error). */
export const CLOSE_PROTOCOL_ERROR = 1002;
/** WebSocket's own normal closure (RFC 6455), used when the client leaves on purpose. */
export const CLOSE_NORMAL = 1000;

// --- limits (crates/parley-proto/src/limits.rs) ----------------------------

/** Shortest username, in characters (`[a-z0-9_.]`). */
export const USERNAME_MIN_CHARS = 3;
/** Longest username, in characters. */
export const USERNAME_MAX_CHARS = 32;
/** Shortest password, in characters. */
export const PASSWORD_MIN_CHARS = 8;
/** Longest password, in characters. */
export const PASSWORD_MAX_CHARS = 256;
/** History page size when the request gives none. */
export const HISTORY_DEFAULT_LIMIT = 50;
/** Largest history page. */
export const HISTORY_MAX_LIMIT = 100;
/** Search page size when the request gives none. */
export const SEARCH_DEFAULT_LIMIT = 20;
/** Largest search page. */
export const SEARCH_MAX_LIMIT = 50;
/** Longest search query, in characters. */
export const SEARCH_MAX_QUERY_CHARS = 256;
/** Longest display name, in characters. */
export const DISPLAY_NAME_MAX_CHARS = 64;

/**
 * The server's default `max_text_bytes` (UTF-8 bytes of a message's text;
 * a config field, `crates/parley-server/src/config.rs`, not a wire constant).
 */
export const DEFAULT_MAX_TEXT_BYTES = 65536;

/** A valid username: lowercase letters, digits, `_` and `.`, within the length limits. */
export const USERNAME_PATTERN = new RegExp(`^[a-z0-9_.]{${USERNAME_MIN_CHARS},${USERNAME_MAX_CHARS}}$`);

// --- client frames ----------------------------------------------------------

/**
 * The first frame on a socket. `since` is the inbox cursor to replay from;
 * left out when the client has none (it then starts at the head).
 * @param {string} token @param {number|null|undefined} since
 */
export function authFrame(token, since) {
  /** @type {{type: 'auth', token: string, since?: number}} */
  const frame = { type: 'auth', token };
  if (since !== null && since !== undefined) frame.since = since;
  return frame;
}

/** Heartbeat; the server answers every ping with a pong. @param {string} nonce */
export function pingFrame(nonce) {
  return { type: 'ping', nonce };
}

/**
 * A message the user sends: a text, or (with a media `kind` and an uploaded
 * `media.media_id`, §9) a photo, video, voice note or file whose caption is
 * `text`; a reply when `reply_to_seq` is set. Resends use the same
 * `client_msg_id`, which makes them idempotent.
 * @param {{client_msg_id: string, conversation_id: string, text: string, reply_to_seq?: number,
 *   kind?: string, media?: {media_id?: string}}} item
 */
export function sendTextFrame(item) {
  const media = MEDIA_KINDS.includes(String(item.kind)) && item.media && item.media.media_id ? item.media.media_id : '';
  /** @type {{type: 'send', client_msg_id: string, conversation_id: string, kind: string, text: string, reply_to_seq?: number, media?: {media_id: string}[]}} */
  const frame = {
    type: 'send', client_msg_id: item.client_msg_id, conversation_id: item.conversation_id,
    kind: media ? String(item.kind) : 'text', text: item.text,
  };
  if (typeof item.reply_to_seq === 'number' && item.reply_to_seq > 0) frame.reply_to_seq = item.reply_to_seq;
  if (media) frame.media = [{ media_id: media }];
  return frame;
}

/** Message kinds that carry one media item (§9); the text is their caption. */
export const MEDIA_KINDS = ['image', 'video', 'audio', 'file'];

/** Message kinds that are events on an earlier message (§8), never bubbles of their own. */
export const EVENT_KINDS = ['edit', 'delete', 'reaction'];

/** Whether a message is an event (edit, delete, reaction) on `target_seq`. @param {{kind?: string}} m */
export function isEventKind(m) {
  return EVENT_KINDS.includes(String(m && m.kind));
}

/** The quick reactions offered first (the picker has more). */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];

/** Everything up to `upToSeq` arrived on this device. @param {string} conversationId @param {number} upToSeq */
export function deliveredReceiptFrame(conversationId, upToSeq) {
  return { type: 'receipt', conversation_id: conversationId, status: 'delivered', up_to_seq: upToSeq };
}

/** Everything up to `upToSeq` was seen by the user. @param {string} conversationId @param {number} upToSeq */
export function readReceiptFrame(conversationId, upToSeq) {
  return { type: 'receipt', conversation_id: conversationId, status: 'read', up_to_seq: upToSeq };
}

/** Started (`active`) or stopped typing. @param {string} conversationId @param {boolean} active */
export function typingFrame(conversationId, active) {
  return { type: 'typing', conversation_id: conversationId, active };
}

/** @param {string[]} userIds */
export function presenceSubscribeFrame(userIds) {
  return { type: 'presence_subscribe', user_ids: userIds };
}

/** @param {string[]} userIds */
export function presenceUnsubscribeFrame(userIds) {
  return { type: 'presence_unsubscribe', user_ids: userIds };
}

/**
 * Frame types whose errors come back with the frame type as `ref` (messages
 * carry their `client_msg_id` instead). A refusal of one of these is not the
 * user's business, so the client only logs it.
 */
const CONTROL_FRAME_TYPES = ['typing', 'receipt', 'ping', 'presence_subscribe', 'presence_unsubscribe'];

/** Whether an error frame's `ref` names one of the control frames above. @param {unknown} ref */
export function isControlFrameRef(ref) {
  return CONTROL_FRAME_TYPES.includes(String(ref));
}

// --- encoding ---------------------------------------------------------------

/** The text to put on the socket for a frame built above. @param {object} frame */
export function encodeFrame(frame) {
  return JSON.stringify(frame);
}

/**
 * A server frame from the socket's text, or null when it is not JSON or has
 * no `type` (ignored, like unknown types from a newer server).
 * @param {string} text
 * @returns {any}
 */
export function decodeServerFrame(text) {
  let frame;
  try { frame = JSON.parse(text); } catch { return null; }
  if (!frame || typeof frame.type !== 'string') return null;
  return frame;
}

// HTTP client for the Parley REST API (`/v1`, spec §1–§4).
//
// Every failure is turned into an `ApiError` carrying the spec's stable error
// `code`, so the UI can map it to a human sentence (see `format.js`). A
// network failure (server unreachable) gets the client-side code `network`.
// Request bodies are built here; WebSocket frames are built in `protocol.js`.

/** @typedef {{user_id: string, username: string, display_name?: string, avatar_media_id?: string}} User */
/** @typedef {{token: string, user_id: string, device_id: string, expires_at_ms: number}} Session */
/**
 * @typedef {{conversation_id: string, seq: number, message_id: string, sender_id: string,
 *   sender_device_id?: string, client_msg_id?: string, sent_at_ms: number, kind: string,
 *   text?: string, reply_to_seq?: number|null, event?: string, user_ids?: string[],
 *   name?: string, cursor?: number, media?: MediaItem[]}} Message
 */
/**
 * The media a photo, video, voice note or file message carries (§9).
 * @typedef {{media_id: string, content_type: string, size: number, filename?: string,
 *   width?: number, height?: number, duration_ms?: number}} MediaItem
 */
/**
 * @typedef {{conversation_id: string, kind: 'direct'|'group', name?: string,
 *   members?: string[], last_seq: number, last_message: Message|null,
 *   unread_count: number, read_up_to: number}} ConversationSummary
 */
/**
 * @typedef {{user_id: string, role: string, delivered_up_to?: number, read_up_to?: number}} Member
 * @typedef {{conversation_id: string, kind: 'direct'|'group', name?: string,
 *   members: Member[], last_seq?: number}} ConversationDetails
 */

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the server could not be reached)
   * @param {string} code stable snake_case code from the spec, or `network`
   * @param {string} message the server's message (for logs; the UI uses `code`)
   * @param {number} [retryAfterMs]
   */
  constructor(status, code, message, retryAfterMs) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** @param {number} status */
function codeForStatus(status) {
  switch (status) {
    case 400: return 'bad_request';
    case 401: return 'unauthorized';
    case 403: return 'forbidden';
    case 404: return 'not_found';
    case 409: return 'conflict';
    case 413: return 'payload_too_large';
    case 415: return 'unsupported_media_type';
    case 429: return 'rate_limited';
    case 503: return 'unavailable';
    default: return status >= 500 ? 'internal' : 'bad_request';
  }
}

export class Api {
  /**
   * @param {() => string|null} getToken
   * @param {(err: ApiError) => void} onUnauthorized called when an authenticated call gets 401
   */
  constructor(getToken, onUnauthorized) {
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
  }

  /**
   * @param {string} method
   * @param {string} path path below /v1, starting with '/'
   * @param {unknown} [body]
   * @param {{auth?: boolean, notifyUnauthorized?: boolean}} [opts]
   * @returns {Promise<any>}
   */
  async request(method, path, body, opts = {}) {
    const auth = opts.auth !== false;
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = auth ? this.getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(`/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network', String(e));
    }
    if (res.status === 204) return null;
    let data = null;
    const text = await res.text().catch(() => '');
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
      const err = data && data.error;
      const retryHeader = res.headers.get('Retry-After');
      const retryAfterMs = retryHeader ? Number(retryHeader) * 1000 : undefined;
      const apiErr = new ApiError(
        res.status,
        (err && err.code) || codeForStatus(res.status),
        (err && err.message) || res.statusText,
        retryAfterMs,
      );
      if (apiErr.code === 'unauthorized' && auth && token && opts.notifyUnauthorized !== false) this.onUnauthorized(apiErr);
      throw apiErr;
    }
    return data;
  }

  // --- accounts ---------------------------------------------------------

  /**
   * @param {string} username @param {string} password @param {string} [displayName] shown instead of the username
   * @returns {Promise<User>}
   */
  register(username, password, displayName) {
    /** @type {{username: string, password: string, display_name?: string}} */
    const body = { username, password };
    if (displayName) body.display_name = displayName;
    return this.request('POST', '/users', body, { auth: false });
  }

  /** @returns {Promise<Session>} */
  login(username, password) {
    return this.request('POST', '/sessions', { username, password, device_name: deviceName() }, { auth: false });
  }

  logout() { return this.request('DELETE', '/sessions/current'); }

  me() { return this.request('GET', '/me'); }

  /** @param {string} userId @returns {Promise<User>} */
  user(userId) { return this.request('GET', `/users/${encodeURIComponent(userId)}`); }

  /** @param {string} username @returns {Promise<User>} */
  userByName(username) { return this.request('GET', `/users?username=${encodeURIComponent(username)}`); }

  /**
   * A user's presence. A refusal never ends the session: presence is a
   * nicety, and the socket notices a revoked token on its own.
   * @param {string} userId @returns {Promise<{online: boolean, last_seen_ms?: number}>}
   */
  presence(userId) {
    return this.request('GET', `/users/${encodeURIComponent(userId)}/presence`, undefined, { notifyUnauthorized: false });
  }

  // --- push (§12) -------------------------------------------------------

  /** @returns {Promise<{public_key: string}>} */
  pushVapidKey() { return this.request('GET', '/push/vapid', undefined, { auth: false }); }

  /** @param {{kind: 'webpush', endpoint: string, keys: {p256dh: string, auth: string}}} registration */
  registerPush(registration) { return this.request('PUT', '/me/devices/current/push', registration); }

  unregisterPush() { return this.request('DELETE', '/me/devices/current/push'); }

  // --- conversations ----------------------------------------------------

  /** @returns {Promise<{conversations: ConversationSummary[]}>} */
  conversations() { return this.request('GET', '/conversations'); }

  /** @param {string} id @returns {Promise<ConversationDetails>} */
  conversation(id) { return this.request('GET', `/conversations/${encodeURIComponent(id)}`); }

  /** @param {string} userId */
  startDirect(userId) { return this.request('POST', '/conversations/direct', { user_id: userId }); }

  /** @param {string} name @param {string[]} memberIds */
  createGroup(name, memberIds) { return this.request('POST', '/groups', { name, member_ids: memberIds }); }

  addMembers(groupId, userIds) {
    return this.request('POST', `/groups/${encodeURIComponent(groupId)}/members`, { user_ids: userIds });
  }

  removeMember(groupId, userId) {
    return this.request('DELETE', `/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(userId)}`);
  }

  /** @param {string} groupId @param {string} userId @param {'admin'|'member'} role */
  setRole(groupId, userId, role) {
    return this.request('PUT', `/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(userId)}/role`, { role });
  }

  renameGroup(groupId, name) {
    return this.request('PATCH', `/groups/${encodeURIComponent(groupId)}`, { name });
  }

  // --- messages ---------------------------------------------------------

  /**
   * @param {string} id
   * @param {{before_seq?: number, after_seq?: number, limit?: number}} [q]
   * @returns {Promise<{messages: Message[], has_more: boolean}>}
   */
  messages(id, q = {}) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null) params.set(k, String(v));
    const qs = params.toString();
    return this.request('GET', `/conversations/${encodeURIComponent(id)}/messages${qs ? `?${qs}` : ''}`);
  }

  /**
   * A text message (a reply with `replyToSeq`).
   * @param {string} id @param {string} clientMsgId @param {string} text @param {number} [replyToSeq]
   * @returns {Promise<{message: Message}>}
   */
  sendMessage(id, clientMsgId, text, replyToSeq) {
    /** @type {Record<string, unknown>} */
    const body = { client_msg_id: clientMsgId, kind: 'text', text };
    if (replyToSeq) body.reply_to_seq = replyToSeq;
    return this.request('POST', `/conversations/${encodeURIComponent(id)}/messages`, body);
  }

  /**
   * A forwarded copy of a message (§8): its text, and for a photo, video,
   * voice note or file the same media (§9: a forward uploads nothing).
   * @param {string} id @param {string} clientMsgId @param {{kind?: string, text?: string, media?: {media_id: string}[]}} m
   */
  forwardMessage(id, clientMsgId, m) {
    /** @type {Record<string, unknown>} */
    const body = { client_msg_id: clientMsgId, kind: m.kind || 'text', text: m.text || '', forwarded: true };
    if (body.kind !== 'text' && Array.isArray(m.media) && m.media[0]) body.media = [{ media_id: m.media[0].media_id }];
    return this.request('POST', `/conversations/${encodeURIComponent(id)}/messages`, body);
  }

  /**
   * An event on the message at `targetSeq` (§8): `edit` with `text`,
   * `delete`, or `reaction` with `emoji` ('' removes mine).
   * @param {string} id @param {string} clientMsgId @param {'edit'|'delete'|'reaction'} kind
   * @param {number} targetSeq @param {{text?: string, emoji?: string}} [fields]
   * @returns {Promise<{message: Message}>}
   */
  sendEvent(id, clientMsgId, kind, targetSeq, fields = {}) {
    /** @type {Record<string, unknown>} */
    const body = { client_msg_id: clientMsgId, kind, target_seq: targetSeq };
    if (kind === 'edit') body.text = fields.text || '';
    if (kind === 'reaction') body.emoji = fields.emoji || '';
    return this.request('POST', `/conversations/${encodeURIComponent(id)}/messages`, body);
  }

  // --- media (§9) --------------------------------------------------------

  /**
   * An upload slot: where to PUT the bytes, with which headers.
   * @param {{content_type: string, size: number, sha256: string, filename?: string}} body
   * @returns {Promise<{media_id: string, upload: {method: string, url: string, headers: Record<string, string>}, expires_at_ms: number}>}
   */
  createMedia(body) { return this.request('POST', '/media', body); }

  /**
   * The server checks the uploaded bytes; the answer is the verified media.
   * @param {string} mediaId
   * @returns {Promise<{media_id: string, status: string, content_type: string, size: number, width?: number, height?: number, thumbnails?: {size: string}[]}>}
   */
  completeMedia(mediaId) { return this.request('POST', `/media/${encodeURIComponent(mediaId)}/complete`); }

  /**
   * A capability URL for the media (or its thumbnail `size`), usable in
   * `<img src>` without a header for a few minutes.
   * @param {string} mediaId @param {'s'|'m'|'l'} [size]
   * @returns {Promise<{url: string, expires_at_ms: number}>}
   */
  mediaUrl(mediaId, size) {
    return this.request('GET', `/media/${encodeURIComponent(mediaId)}/url${size ? `?size=${size}` : ''}`, undefined, { notifyUnauthorized: false });
  }

  /** A group's photo (`''` removes it; admins). @param {string} groupId @param {string} mediaId */
  setGroupAvatar(groupId, mediaId) {
    return this.request('PATCH', `/groups/${encodeURIComponent(groupId)}`, { avatar_media_id: mediaId });
  }

  // --- search (§10) -----------------------------------------------------

  /**
   * Messages whose current text contains `q`, newest first.
   * @param {string} q @param {{limit?: number, before_id?: string}} [opts]
   * @returns {Promise<{results: Message[], has_more: boolean}>}
   */
  search(q, opts = {}) {
    const params = new URLSearchParams({ q });
    for (const [k, v] of Object.entries(opts)) if (v !== undefined && v !== null) params.set(k, String(v));
    return this.request('GET', `/search?${params}`);
  }

  // --- my settings, blocks, devices (§11) --------------------------------

  /**
   * Mute (`muted_until_ms`: -1 forever, 0 off), pin or archive a conversation for me.
   * @param {string} id @param {{muted_until_ms?: number, pinned?: boolean, archived?: boolean}} settings
   */
  conversationSettings(id, settings) {
    return this.request('PUT', `/conversations/${encodeURIComponent(id)}/settings`, settings);
  }

  /** @returns {Promise<{user_ids: string[]}>} */
  blocks() { return this.request('GET', '/me/blocks'); }

  /** @param {string} userId @param {boolean} on */
  setBlocked(userId, on) {
    return this.request(on ? 'PUT' : 'DELETE', `/me/blocks/${encodeURIComponent(userId)}`);
  }

  /** @param {{display_name?: string, avatar_media_id?: string}} fields @returns {Promise<User>} */
  updateProfile(fields) { return this.request('PATCH', '/me', fields); }

  /** @param {{presence_visibility?: 'everyone'|'nobody', read_receipts?: boolean, push_previews?: boolean}} settings */
  updateSettings(settings) { return this.request('PUT', '/me/settings', settings); }

  /** Log another of my devices out. @param {string} deviceId */
  revokeDevice(deviceId) { return this.request('DELETE', `/me/devices/${encodeURIComponent(deviceId)}`); }
}

function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge'
    : /Chrom(e|ium)\//.test(ua) ? 'Chromium' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  return `Web (${browser})`;
}

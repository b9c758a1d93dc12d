// The WebSocket session (`GET /v1/ws`, spec §5): connect, authenticate,
// heartbeat, and reconnect with exponential backoff and jitter.
//
// The connection knows nothing about chats: it hands every server frame to
// `onFrame` and reports its state through `onState`. The caller decides what
// `since` cursor to authenticate with, each time a socket opens. The frames
// it sends itself (auth, ping) are built by `protocol.js`.

import {
  authFrame, pingFrame, encodeFrame, decodeServerFrame, CLOSE_NORMAL, CLOSE_TIMEOUT, CLOSE_UNAUTHORIZED,
} from './protocol.js';

/** @typedef {'connecting'|'open'|'offline'|'stopped'} ConnState */

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 5000;
const AUTH_TIMEOUT_MS = 10000;
/** How often the client pings an open socket: a frozen server shows within seconds. */
export const PING_INTERVAL_MS = 3000;
/** A ping unanswered (no frame at all) for this long means the link is dead. */
export const PONG_TIMEOUT_MS = 4000;
/** A socket that is not `ready` this long after we asked for it is given up. */
const CONNECT_TIMEOUT_MS = 6000;

/**
 * Delay before reconnect attempt number `attempt` (0-based): exponential,
 * capped, with "full jitter" (uniform in [0, cap]) so a crowd of clients
 * dropped by the same node spreads over the whole window instead of
 * arriving in waves (the same rule as parley-client's `Backoff`).
 * @param {number} attempt
 */
export function backoffDelay(attempt) {
  const exp = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(Math.random() * exp);
}

export class Connection {
  /**
   * @param {{
   *   token: string,
   *   getSince: () => number|null,
   *   onFrame: (frame: any) => void,
   *   onState: (state: ConnState, detail?: {retryInMs?: number}) => void,
   *   onUnauthorized: () => void,
   * }} opts
   */
  constructor(opts) {
    this.opts = opts;
    /** @type {WebSocket|null} */
    this.ws = null;
    /** @type {ConnState} */
    this.state = 'connecting';
    this.attempt = 0;
    this.ready = false;
    this.heartbeatMs = 25000;
    /** @type {ReturnType<typeof setTimeout>|null} */ this.retryTimer = null;
    /** @type {ReturnType<typeof setInterval>|null} */ this.pingTimer = null;
    /** @type {ReturnType<typeof setTimeout>|null} */ this.authTimer = null;
    this.lastFrameAt = 0;
    /** When the oldest ping not yet followed by any frame was sent (0: none outstanding). */
    this.pingOutstandingSince = 0;
    this.stopped = false;
    this.onOnline = () => this.reconnectNow();
    window.addEventListener('online', this.onOnline);
  }

  start() { this.connect(); }

  /** Close for good (log out). */
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(CLOSE_NORMAL, 'bye'); } catch { /* already closed */ }
    }
    this.setState('stopped');
  }

  /** Skip the remaining backoff wait (user action, browser came online). */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  /**
   * Send a frame if the session is authenticated. Returns false when it could
   * not be sent (the caller keeps it for later, e.g. in the outbox).
   * @param {object} frame built by one of `protocol.js`'s frame functions
   */
  send(frame) {
    if (!this.ws || !this.ready || this.ws.readyState !== WebSocket.OPEN) return false;
    try {
      this.ws.send(encodeFrame(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** @param {ConnState} state @param {{retryInMs?: number}} [detail] */
  setState(state, detail) {
    this.state = state;
    this.opts.onState(state, detail);
  }

  clearTimers() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.authTimer) clearTimeout(this.authTimer);
    this.retryTimer = this.pingTimer = this.authTimer = null;
  }

  connect() {
    if (this.stopped) return;
    this.clearTimers();
    this.ready = false;
    this.setState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/v1/ws`);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    // A frozen or unreachable server may accept the TCP connection and then
    // say nothing: without `ready` in time, drop this socket and try again.
    this.authTimer = setTimeout(() => {
      if (this.ws === ws && !this.ready) this.abandon(ws, 'no ready');
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      ws.send(encodeFrame(authFrame(this.opts.token, this.opts.getSince())));
      if (this.authTimer) clearTimeout(this.authTimer);
      this.authTimer = setTimeout(() => {
        if (this.ws === ws && !this.ready) this.abandon(ws, 'no ready');
      }, AUTH_TIMEOUT_MS);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      this.pingOutstandingSince = 0;
      const frame = decodeServerFrame(ev.data);
      if (!frame) return;
      if (frame.type === 'ready') this.onReady(ws, frame);
      else if (frame.type === 'reconnect') this.onReconnectFrame(ws, frame);
      else if (frame.type === 'pong') return;
      if (frame.type === 'error' && frame.code === 'unauthorized') {
        // The server closes with CLOSE_UNAUTHORIZED next; don't wait for it.
        this.giveUpUnauthorized(ws);
        return;
      }
      this.opts.onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      this.clearTimers();
      if (ev.code === CLOSE_UNAUTHORIZED) { this.giveUpUnauthorized(ws); return; }
      this.scheduleRetry();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  /** @param {WebSocket} ws */
  giveUpUnauthorized(ws) {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    try { ws.close(); } catch { /* ignore */ }
    this.ws = null;
    this.setState('stopped');
    this.opts.onUnauthorized();
  }

  /** @param {WebSocket} ws @param {{heartbeat_ms?: number}} frame */
  onReady(ws, frame) {
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.ready = true;
    this.attempt = 0;
    this.heartbeatMs = Math.max(250, Number(frame.heartbeat_ms) || 25000);
    let nonce = 0;
    let lastPingAt = 0;
    this.lastFrameAt = Date.now();
    this.pingOutstandingSince = 0;
    // Ping often and expect an answer soon: a silent link (frozen server,
    // dead Wi-Fi) is noticed in seconds, not after TCP's minutes. The check
    // counts only from a ping we actually sent, so throttled timers in a
    // background tab never make a healthy socket look dead.
    const periodMs = Math.min(PING_INTERVAL_MS, Math.round(this.heartbeatMs * 0.8));
    this.pingTimer = setInterval(() => {
      if (this.ws !== ws) return;
      const now = Date.now();
      if (this.pingOutstandingSince && now - this.pingOutstandingSince > PONG_TIMEOUT_MS) {
        this.abandon(ws, 'heartbeat timeout');
        return;
      }
      if (now - lastPingAt >= periodMs) {
        lastPingAt = now;
        try { ws.send(encodeFrame(pingFrame(String(++nonce)))); } catch { /* closing */ }
        if (!this.pingOutstandingSince) this.pingOutstandingSince = now;
      }
    }, 1000);
    this.setState('open');
  }

  /** The node is draining: reconnect after `after_ms`, jittered per client. */
  onReconnectFrame(ws, frame) {
    const after = Math.max(0, Number(frame.after_ms) || 0);
    const delay = Math.round(after + Math.random() * Math.min(after * 0.5, 2000));
    this.ws = null;
    this.ready = false;
    this.clearTimers();
    try { ws.close(CLOSE_NORMAL, 'reconnect requested'); } catch { /* ignore */ }
    this.setState('offline', { retryInMs: delay });
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect(); }, delay);
  }

  /**
   * Give up on a silent socket at once, without waiting for the close
   * handshake (a frozen peer never answers it), and connect again.
   * @param {WebSocket} ws @param {string} reason
   */
  abandon(ws, reason) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.ready = false;
    this.clearTimers();
    ws.onmessage = null;
    ws.onclose = null;
    try { ws.close(CLOSE_TIMEOUT, reason); } catch { /* ignore */ }
    const wasReady = this.state === 'open';
    if (wasReady) { this.attempt = 0; this.connect(); } else this.scheduleRetry();
  }

  scheduleRetry() {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt++);
    this.setState('offline', { retryInMs: delay });
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect(); }, delay);
  }
}

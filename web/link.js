// The session's live WebSocket: the one `Connection`, its state as the UI
// shows it, and sending a frame (built by `protocol.js`) over it.

import { Connection } from './connection.js';

/** @type {Connection|null} */
let conn = null;
/** @type {import('./connection.js').ConnState} */
let connState = 'connecting';
let everConnected = false;

/**
 * Open the socket for a session. `onState` runs after the link has recorded
 * the new state, so handlers see it through `state()`.
 * @param {ConstructorParameters<typeof Connection>[0]} opts
 */
export function start(opts) {
  conn = new Connection({
    ...opts,
    onState: (s, detail) => {
      connState = s;
      if (s === 'open') everConnected = true;
      opts.onState(s, detail);
    },
  });
  conn.start();
}

/** Close for good (log out) and forget the connection's history. */
export function stop() {
  if (conn) conn.stop();
  conn = null;
  everConnected = false;
}

/** @returns {import('./connection.js').ConnState} the state of the last connection event */
export function state() { return connState; }

/** Whether this session has been connected at least once (first connect vs reconnect). */
export function wasEverConnected() { return everConnected; }

/**
 * Send a frame if the socket is authenticated; false when it could not be sent.
 * @param {object} frame built by `protocol.js`
 */
export function send(frame) {
  return !!conn && conn.send(frame);
}

/** Skip the remaining backoff wait. */
export function reconnectNow() {
  if (conn) conn.reconnectNow();
}

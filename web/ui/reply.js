// Replying: the "Replying to" bar above the composer (who and what is
// quoted, "Cancel reply"), and which message the next send answers. One
// reply at a time, for the open chat; opening another chat drops it.

import { openConvId } from '../model.js';
import { $ } from './dom.js';
import { snippet, senderName, textOf } from './bubble.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../model.js').Conv} Conv */

let replying = /** @type {{convId: string, seq: number, sender_id: string, text: string}|null} */ (null);

/** Start replying to `m` of `c`: the bar shows it, focus goes to the composer. @param {Conv} c @param {Message} m */
export function startReply(c, m) {
  replying = { convId: c.id, seq: m.seq, sender_id: m.sender_id, text: textOf(m) };
  renderReplyBar();
  /** @type {HTMLElement} */ ($('composer-input')).focus();
}

/** Drop the reply (sent, cancelled, or another chat opened). */
export function cancelReply() {
  replying = null;
  renderReplyBar();
}

/** The seq the next send in `convId` replies to, or 0. @param {string} convId */
export function replyTarget(convId) {
  return replying && replying.convId === convId ? replying.seq : 0;
}

export function renderReplyBar() {
  const bar = $('reply-bar');
  const show = !!replying && replying.convId === openConvId();
  bar.hidden = !show;
  if (!show || !replying) return;
  $('reply-bar-sender').textContent = senderName(replying.sender_id);
  $('reply-bar-text').textContent = snippet(replying.text);
}

/** Wire "Cancel reply" and Escape in the composer (boot). */
export function setupReply() {
  $('reply-cancel').addEventListener('click', () => {
    cancelReply();
    /** @type {HTMLElement} */ ($('composer-input')).focus();
  });
  $('composer-input').addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && replying && !$('reply-bar').hidden) { e.stopPropagation(); cancelReply(); }
  });
}

// The inside of a message bubble: the "Forwarded" label, the quote of the
// message replied to (a button that jumps to it), the media (`media-view.js`)
// and the text or caption, or "This message was deleted", the "edited"
// label, and the reactions under the bubble (one button per emoji: mine
// toggles). Rebuilt only when what it shows changes.

import { me } from '../session.js';
import { displayName } from '../users.js';
import { h } from './dom.js';
import { richText } from './message-parts.js';
import { MEDIA_KINDS } from '../protocol.js';
import { mediaLabel } from '../media.js';
import { mediaPart, pendingMediaPart } from './media-view.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../model.js').Conv} Conv */
/** @typedef {{emoji: string, user_ids: string[]}} Reaction */

/** The words a deleted message shows. */
export const DELETED_TEXT = 'This message was deleted';

/** The longest quote shown, in characters (the server cuts at 200 too). */
const QUOTE_MAX_CHARS = 200;

/**
 * What a reply quotes: the original as loaded here (its current state), else
 * the server's `reply_to`. Null when the message is not a reply.
 * @param {any} m @param {Conv} c
 * @returns {{seq: number, sender_id: string, text: string, deleted: boolean}|null}
 */
export function quoteOf(m, c) {
  const seq = Number(m.reply_to_seq || (m.reply_to && m.reply_to.seq)) || 0;
  if (!seq) return null;
  const t = /** @type {any} */ (c.messages.get(seq));
  if (t) return { seq, sender_id: t.sender_id, text: textOf(t), deleted: !!t.deleted };
  const q = m.reply_to;
  if (!q) return { seq, sender_id: '', text: '', deleted: false };
  return { seq, sender_id: q.sender_id, text: textOf(q), deleted: !!q.deleted };
}

/** A message's words for a one-line quote: its text, or what its media is ("Photo", a file name…). @param {any} m */
export function textOf(m) {
  return MEDIA_KINDS.includes(m.kind) ? mediaLabel(m) : (m.text || '');
}

/** A short line of a message's text for quotes and the reply bar. @param {string} text */
export function snippet(text) {
  const one = String(text || '').replace(/\s+/g, ' ').trim();
  return one.length > QUOTE_MAX_CHARS ? `${one.slice(0, QUOTE_MAX_CHARS - 1)}…` : one;
}

/** "You", or the sender's name. @param {string} id */
export function senderName(id) {
  return id === me() ? 'You' : (id ? displayName(id) : '…');
}

/**
 * A key of everything the body shows: when it is unchanged the body is left
 * alone (the bubble is not rebuilt on every render).
 * @param {any} m a message, or an outbox item @param {Conv} c
 */
export function bodyKey(m, c) {
  const q = quoteOf(m, c);
  const reactions = (m.reactions || []).map((/** @type {Reaction} */ r) => `${r.emoji}:${r.user_ids.join(',')}`).join(';');
  const names = q ? senderName(q.sender_id) : '';
  const item = Array.isArray(m.media) ? m.media[0] : m.media;
  const media = item ? `${m.kind}|${item.media_id || ''}|${m.failed || ''}` : '';
  return [m.text, media, !!m.deleted, m.edited_at_ms || 0, !!m.forwarded, reactions,
    q ? `${q.seq}|${q.text}|${q.deleted}|${names}` : ''].join('\u0001');
}

/**
 * Fill the body of a bubble (everything but the sender line and the meta).
 * @param {HTMLElement} body @param {any} m a message, or an outbox item @param {Conv} c
 */
export function fillBody(body, m, c) {
  body.replaceChildren();
  if (m.deleted) {
    const t = h('div', 'text deleted', DELETED_TEXT);
    body.append(t);
    return;
  }
  if (m.forwarded) body.append(h('div', 'forwarded', 'Forwarded'));
  const q = quoteOf(m, c);
  if (q) {
    const btn = /** @type {HTMLButtonElement} */ (h('button', 'quote'));
    btn.type = 'button';
    btn.dataset.jump = String(q.seq);
    btn.append(h('span', 'quote-sender', senderName(q.sender_id)));
    const qt = h('span', 'quote-text', q.deleted ? DELETED_TEXT : snippet(q.text));
    qt.dir = 'auto';
    btn.append(qt);
    btn.title = 'Show the original message';
    body.append(btn);
  }
  if (MEDIA_KINDS.includes(m.kind)) {
    // A sent message has a seq; an outbox item shows its file as picked.
    const part = typeof m.seq === 'number' ? mediaPart(m) : pendingMediaPart(m);
    if (part) body.append(part);
    if (m.text) body.append(richText(m.text));
    return;
  }
  body.append(richText(m.kind === 'text' || m.kind === undefined ? (m.text || '') : `[${m.kind}]`));
}

/**
 * The reactions under a bubble: one button per emoji, named by the emoji and
 * its count ("👍 2"), described by who reacted; mine is pressed.
 * @param {HTMLElement} row @param {any} m
 */
export function fillReactions(row, m) {
  row.replaceChildren();
  const list = /** @type {Reaction[]} */ (m.deleted ? [] : (m.reactions || []));
  row.hidden = !list.length;
  for (const r of list) {
    const btn = /** @type {HTMLButtonElement} */ (h('button', 'reaction', `${r.emoji} ${r.user_ids.length}`));
    btn.type = 'button';
    btn.dataset.emoji = r.emoji;
    const mine = r.user_ids.includes(me());
    btn.setAttribute('aria-pressed', String(mine));
    btn.title = `${r.user_ids.map((id) => senderName(id)).join(', ')} reacted with ${r.emoji}${mine ? ' (click to remove yours)' : ''}`;
    row.append(btn);
  }
}

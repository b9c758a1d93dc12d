// Message events (§8) applied to the message they target: an `edit`
// replaces the text, a `delete` empties it for everyone, a `reaction` sets
// or removes its sender's one reaction. Pure functions on message objects;
// `model.js` decides when an event is new enough to apply.

import { isEventKind } from './protocol.js';

/** @typedef {import('./api.js').Message} Message */
/** @typedef {{emoji: string, user_ids: string[]}} Reaction */

export { isEventKind as isEvent };

/**
 * Change `target` as `event` says. Applying the events of a message in seq
 * order gives its current state, so applying one again is harmless.
 * @param {Message} target @param {Message} event
 */
export function applyEvent(target, event) {
  const t = /** @type {any} */ (target);
  const e = /** @type {any} */ (event);
  if (t.deleted) return;
  if (e.kind === 'edit') {
    t.text = e.text || '';
    t.edited_at_ms = e.sent_at_ms || Date.now();
  } else if (e.kind === 'delete') {
    markDeleted(t);
  } else if (e.kind === 'reaction') {
    t.reactions = withReaction(t.reactions || [], e.sender_id, e.emoji || '');
    if (!t.reactions.length) delete t.reactions;
  }
}

/** Empty a message the way the server does when it is deleted for everyone. @param {any} t */
export function markDeleted(t) {
  t.deleted = true;
  delete t.text;
  delete t.media;
  delete t.reactions;
  delete t.reply_to;
  delete t.reply_to_seq;
  delete t.forwarded;
  delete t.edited_at_ms;
}

/**
 * `reactions` with `userId`'s reaction set to `emoji` ('' removes it):
 * emoji keep the order they first appeared in, users the order they reacted.
 * @param {Reaction[]} reactions @param {string} userId @param {string} emoji
 * @returns {Reaction[]}
 */
export function withReaction(reactions, userId, emoji) {
  const out = reactions
    .map((r) => ({ emoji: r.emoji, user_ids: r.user_ids.filter((u) => u !== userId) }))
    .filter((r) => r.user_ids.length > 0);
  if (emoji) {
    const r = out.find((x) => x.emoji === emoji);
    if (r) r.user_ids.push(userId); else out.push({ emoji, user_ids: [userId] });
  }
  return out;
}

/** The emoji `userId` reacted with on `m`, or ''. @param {Message} m @param {string} userId */
export function reactionOf(m, userId) {
  const list = /** @type {Reaction[]} */ (/** @type {any} */ (m).reactions || []);
  const r = list.find((x) => x.user_ids.includes(userId));
  return r ? r.emoji : '';
}

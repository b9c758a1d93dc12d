// "React": a row of quick reactions (👍 ❤️ 😂 😮 😢 🙏) and a picker with
// more, each a button named by its emoji. Choosing my current reaction
// again takes it back.

import { me } from '../session.js';
import { QUICK_REACTIONS } from '../protocol.js';
import { react } from '../message-actions.js';
import { reactionOf } from '../events.js';
import { $, h } from './dom.js';
import { showDialog, hideDialog, setupDialog } from './dialog.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../model.js').Conv} Conv */

/** The picker's emoji, after the quick ones. */
const MORE_EMOJI = [
  '😀', '😁', '😅', '🤣', '😊', '😇', '🙂', '😉', '😍', '🥰', '😘', '😋', '😎', '🤩', '🥳', '🤔',
  '🤨', '😐', '🙄', '😏', '😴', '😌', '😜', '🤪', '😬', '😳', '🥺', '😭', '😡', '🤯', '😱', '🤗',
  '👏', '🙌', '👌', '✌️', '🤞', '💪', '👀', '👎', '🔥', '✨', '🎉', '💯', '✅', '❌', '💔', '💙',
  '💚', '💛', '🧡', '💜', '🤍', '☕', '🍕', '🎂', '🌹', '🌟', '⚡', '🚀', '🙈', '🤝', '🫶', '😮‍💨',
];

let target = /** @type {{c: Conv, m: Message}|null} */ (null);

/** @param {HTMLElement} box @param {string[]} emoji */
function fill(box, emoji) {
  box.replaceChildren();
  for (const e of emoji) {
    const btn = /** @type {HTMLButtonElement} */ (h('button', 'emoji-btn', e));
    btn.type = 'button';
    btn.dataset.emoji = e;
    box.append(btn);
  }
}

/** Offer reactions to `m`. @param {Conv} c @param {Message} m @param {HTMLElement|null} opener */
export function openReactPicker(c, m, opener) {
  target = { c, m };
  const mine = reactionOf(m, me());
  for (const btn of /** @type {NodeListOf<HTMLElement>} */ ($('react-dialog').querySelectorAll('[data-emoji]'))) {
    btn.setAttribute('aria-pressed', String(btn.dataset.emoji === mine));
  }
  $('react-more-list').hidden = true;
  $('react-more').setAttribute('aria-expanded', 'false');
  showDialog(/** @type {HTMLDialogElement} */ ($('react-dialog')), /** @type {HTMLElement} */ ($('react-quick').firstElementChild), opener);
}

/** Wire the picker (boot). */
export function setupReactPicker() {
  const dialog = /** @type {HTMLDialogElement} */ ($('react-dialog'));
  setupDialog(dialog);
  fill($('react-quick'), QUICK_REACTIONS);
  fill($('react-more-list'), MORE_EMOJI);
  $('react-more').addEventListener('click', () => {
    const list = $('react-more-list');
    list.hidden = !list.hidden;
    $('react-more').setAttribute('aria-expanded', String(!list.hidden));
    if (!list.hidden) /** @type {HTMLElement} */ (list.firstElementChild).focus();
  });
  dialog.addEventListener('click', (e) => {
    const btn = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (e.target).closest('[data-emoji]'));
    if (!btn || !target) return;
    const emoji = btn.dataset.emoji || '';
    react(target.c, target.m.seq, reactionOf(target.m, me()) === emoji ? '' : emoji);
    target = null;
    hideDialog(dialog);
  });
}

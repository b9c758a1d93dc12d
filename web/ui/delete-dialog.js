// "Delete message?": "Delete for me" always, "Delete for everyone" only when
// the server would allow it (my own message within the delete window, or
// any message of a group I administer, §8).

import { me } from '../session.js';
import { isAdmin } from '../model.js';
import { deleteForEveryone, hideMessage } from '../message-actions.js';
import { withinDeleteWindow } from '../server-limits.js';
import { MEDIA_KINDS } from '../protocol.js';
import { $ } from './dom.js';
import { showDialog, hideDialog, setupDialog } from './dialog.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../model.js').Conv} Conv */

let target = /** @type {{c: Conv, m: Message}|null} */ (null);

/** Whether I may delete `m` for everyone. @param {Conv} c @param {Message} m */
export function mayDeleteForEveryone(c, m) {
  if (c.left || /** @type {any} */ (m).deleted || !(m.kind === 'text' || MEDIA_KINDS.includes(m.kind))) return false;
  if (m.sender_id === me() && withinDeleteWindow(m.sent_at_ms || 0)) return true;
  return c.kind === 'group' && isAdmin(c);
}

/** Ask how to delete `m`. @param {Conv} c @param {Message} m @param {HTMLElement|null} opener */
export function openDeleteDialog(c, m, opener) {
  target = { c, m };
  const everyone = $('delete-everyone');
  everyone.hidden = !mayDeleteForEveryone(c, m);
  $('delete-text').textContent = everyone.hidden
    ? 'It will be removed from this device only.'
    : 'Delete it for everyone in the chat, or only here on this device.';
  showDialog(/** @type {HTMLDialogElement} */ ($('delete-dialog')), $('delete-cancel'), opener);
}

/** Wire the dialog (boot). */
export function setupDeleteDialog() {
  const dialog = /** @type {HTMLDialogElement} */ ($('delete-dialog'));
  setupDialog(dialog);
  $('delete-me').addEventListener('click', () => {
    if (target) hideMessage(target.c, target.m.seq);
    target = null;
    hideDialog(dialog);
  });
  $('delete-everyone').addEventListener('click', () => {
    if (target) deleteForEveryone(target.c, target.m.seq);
    target = null;
    hideDialog(dialog);
  });
}

// Confirmations before actions that cannot be undone in one click (leaving
// a group, removing a member, logging out): one modal alert dialog with a
// button naming the action and "Cancel", focus inside while it is open and
// back where it came from afterwards.

import { $ } from './dom.js';

/** Resolves the dialog that is open, if any. */
let settle = /** @type {((ok: boolean) => void)|null} */ (null);

/**
 * Ask before doing something. Resolves true when the user pressed the
 * action's button, false on "Cancel", Escape or a click outside.
 * @param {{title: string, text: string, action: string}} what
 * @returns {Promise<boolean>}
 */
export function confirmAction(what) {
  const dialog = /** @type {HTMLDialogElement} */ ($('confirm-dialog'));
  if (settle) settle(false);
  const opener = /** @type {HTMLElement|null} */ (document.activeElement);
  $('confirm-title').textContent = what.title;
  $('confirm-text').textContent = what.text;
  $('confirm-ok').textContent = what.action;
  return new Promise((resolve) => {
    settle = (ok) => {
      settle = null;
      if (dialog.open) dialog.close();
      // Back where the user was, unless that is gone (e.g. the member row).
      if (opener && opener.isConnected && !opener.closest('[hidden]')) opener.focus();
      resolve(ok);
    };
    dialog.showModal();
    /** @type {HTMLElement} */ ($('confirm-cancel')).focus();
  });
}

/** Wire the dialog's buttons (boot). */
export function setupConfirm() {
  const dialog = /** @type {HTMLDialogElement} */ ($('confirm-dialog'));
  $('confirm-ok').addEventListener('click', () => { if (settle) settle(true); });
  $('confirm-cancel').addEventListener('click', () => { if (settle) settle(false); });
  dialog.addEventListener('cancel', (e) => { e.preventDefault(); if (settle) settle(false); });
  dialog.addEventListener('click', (e) => { if (e.target === dialog && settle) settle(false); });
}

// Modal dialogs other than confirmations (delete, react, forward, message
// info, settings): open one with focus inside, close it on Escape, a click
// on the backdrop or its own buttons, and put focus back where it was.

/** Where focus was when each open dialog opened. */
const openers = /** @type {WeakMap<HTMLDialogElement, HTMLElement|null>} */ (new WeakMap());

/**
 * Open `dialog` modally and focus `focus` (else its first control).
 * @param {HTMLDialogElement} dialog @param {HTMLElement|null} [focus] @param {HTMLElement|null} [opener] where focus returns
 */
export function showDialog(dialog, focus, opener) {
  if (dialog.open) dialog.close();
  openers.set(dialog, opener || /** @type {HTMLElement|null} */ (document.activeElement));
  dialog.showModal();
  const first = focus || /** @type {HTMLElement|null} */ (dialog.querySelector('input, button, textarea, select'));
  if (first) first.focus();
}

/** Close `dialog` (focus goes back by its `close` handler). @param {HTMLDialogElement} dialog */
export function hideDialog(dialog) {
  if (dialog.open) dialog.close();
}

/** Wire a dialog's closing (boot): backdrop clicks, `[data-close]` buttons, focus back. @param {HTMLDialogElement} dialog */
export function setupDialog(dialog) {
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) hideDialog(dialog);
    if (/** @type {HTMLElement} */ (e.target).closest('[data-close]')) hideDialog(dialog);
  });
  dialog.addEventListener('close', () => {
    const opener = openers.get(dialog);
    openers.delete(dialog);
    if (opener && opener.isConnected && !opener.closest('[hidden]')) opener.focus({ preventScroll: true });
  });
}

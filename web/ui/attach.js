// Sending files from the composer: "Attach" (the file chooser), files
// dragged onto the chat, and images pasted into the message box. Each file
// becomes one message in the outbox; the composer's text is the caption of
// the first, and a reply in progress applies to it.

import { openConv, otherMember } from '../model.js';
import * as outbox from '../outbox.js';
import { isBlocked } from '../chat-settings.js';
import { $ } from './dom.js';
import { replyTarget, cancelReply } from './reply.js';
import { toast } from './toast.js';

/**
 * The composer's text as a caption, taking it out of the composer (null:
 * over the text limit, so nothing is sent).
 * @typedef {() => string|null} TakeCaption
 */

/** Whether messages can be sent in the open chat now (a member, not blocked). */
function canSend() {
  const c = openConv();
  if (!c) return null;
  if (c.left) { toast('You’re no longer a member of this group.'); return null; }
  const other = c.kind === 'direct' ? otherMember(c) : null;
  if (other && isBlocked(other)) return null;
  return c;
}

/**
 * Send `files` to the open chat, the composer's text as the first one's
 * caption. Resolves how many went into the outbox.
 * @param {File[]} files @param {TakeCaption} takeCaption
 */
export function sendFiles(files, takeCaption) {
  const c = canSend();
  if (!c || !files.length) return 0;
  let caption = takeCaption();
  if (caption === null) return 0;
  let reply = replyTarget(c.id) || undefined;
  for (const f of files) {
    outbox.sendFile(c.id, f, { caption, replyToSeq: reply });
    caption = '';
    reply = undefined;
  }
  cancelReply();
  return files.length;
}

/** Files a drag carries (only a drag of files from outside counts). @param {DragEvent} e */
function dragsFiles(e) {
  return !!e.dataTransfer && [...e.dataTransfer.types].includes('Files');
}

/** Wire "Attach", drag and drop onto the chat and pasting images (boot). @param {TakeCaption} takeCaption */
export function setupAttach(takeCaption) {
  const button = $('attach-button');
  const input = /** @type {HTMLInputElement} */ ($('attach-input'));
  button.addEventListener('click', (e) => {
    // The input's own click bubbles up here: only the button's opens the chooser.
    if (e.target === input) return;
    input.value = '';
    input.click();
  });
  input.addEventListener('change', () => {
    const files = [...(input.files || [])];
    input.value = '';
    if (sendFiles(files, takeCaption)) /** @type {HTMLElement} */ ($('composer-input')).focus();
  });

  // The whole chat area takes drops (header, messages, composer).
  const pane = $('chat');
  const zone = $('drop-zone');
  let depth = 0;
  const hideZone = () => { depth = 0; zone.hidden = true; };
  pane.addEventListener('dragenter', (e) => {
    if (!dragsFiles(e) || !openConv()) return;
    e.preventDefault();
    depth += 1;
    zone.hidden = false;
  });
  pane.addEventListener('dragover', (e) => {
    if (!dragsFiles(e) || !openConv()) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  });
  pane.addEventListener('dragleave', (e) => {
    if (!dragsFiles(e)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) zone.hidden = true;
  });
  pane.addEventListener('drop', (e) => {
    const files = e.dataTransfer ? [...e.dataTransfer.files] : [];
    hideZone();
    if (!files.length || !openConv()) return;
    e.preventDefault();
    sendFiles(files, takeCaption);
  });

  document.addEventListener('paste', (e) => {
    // Pasted images are sent to the open chat (a screenshot, a copied photo);
    // text pastes as text, and other text fields keep their pastes.
    const t = /** @type {HTMLElement} */ (e.target);
    const field = t && t.closest && t.closest('input, textarea, [contenteditable="true"]');
    if ((field && field.id !== 'composer-input') || !openConv() || $('chat-pane').hidden) return;
    const data = e.clipboardData;
    if (!data) return;
    const files = [...data.files].filter((f) => f.type.startsWith('image/'));
    if (!files.length) return;
    e.preventDefault();
    sendFiles(files, takeCaption);
  });
}

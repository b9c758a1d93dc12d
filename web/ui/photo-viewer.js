// The "Photo viewer": a photo at full size in a modal dialog, with "Close"
// (Escape and a click beside the photo close it too); focus returns to the
// thumbnail that opened it.

import { mediaUrl, cachedMediaUrl } from '../media.js';
import { $ } from './dom.js';
import { showDialog, setupDialog } from './dialog.js';

/**
 * Show a photo: media `mediaId` at full size, or `src` (an unsent photo's
 * local preview). `alt` is its caption, else "Photo".
 * @param {string} mediaId @param {string} alt @param {HTMLElement|null} opener @param {string} [src]
 */
export function openPhotoViewer(mediaId, alt, opener, src) {
  const dialog = /** @type {HTMLDialogElement} */ ($('photo-viewer'));
  const img = /** @type {HTMLImageElement} */ ($('photo-viewer-img'));
  img.alt = alt;
  const caption = $('photo-viewer-caption');
  caption.textContent = alt === 'Photo' ? '' : alt;
  caption.hidden = !caption.textContent;
  // What the thumbnail shows until the full size arrives.
  const shown = opener instanceof HTMLImageElement ? opener.currentSrc || opener.src : '';
  img.removeAttribute('src');
  if (src) img.src = src;
  else {
    const now = mediaId ? cachedMediaUrl(mediaId) : '';
    if (now) img.src = now;
    else {
      if (shown) img.src = shown;
      if (mediaId) mediaUrl(mediaId).then((url) => { if (url && dialog.open) img.src = url; });
    }
  }
  showDialog(dialog, /** @type {HTMLElement} */ ($('photo-viewer-close')), opener);
}

/** Wire the dialog (boot). */
export function setupPhotoViewer() {
  const dialog = /** @type {HTMLDialogElement} */ ($('photo-viewer'));
  setupDialog(dialog);
  dialog.addEventListener('click', (e) => {
    // A click on the dark around the photo closes, as in other viewers.
    if (/** @type {HTMLElement} */ (e.target).classList.contains('photo-viewer-stage')) dialog.close();
  });
}

// The media inside a bubble (protocol §9): a photo's thumbnail (an `img`
// named by its caption, else "Photo"; Enter or a click opens the "Photo
// viewer"), a video or audio player, a file's download link (named by the
// file name) with its size; and for an unsent one, the local preview, the
// "Uploading NAME" progress bar and "Cancel upload".

import { mediaUrl, cachedMediaUrl, previewUrl, keptFile, sizeText, mediaLabel, localPreview } from '../media.js';
import * as outbox from '../outbox.js';
import { h } from './dom.js';
import { openPhotoViewer } from './photo-viewer.js';
import { scheduleRender } from './refresh.js';

/** @typedef {import('../api.js').MediaItem} MediaItem */
/** @typedef {import('../store.js').OutboxItem} OutboxItem */

/** The largest a thumbnail shows in a bubble, in CSS pixels (the server's `m` thumbnail fits 320). */
const THUMB_PX = 320;

/**
 * Give `el` the capability URL of `item` (thumbnail `size`, or the full
 * media) as `attr`, now when cached, else when it arrives.
 * @param {HTMLElement} el @param {string} attr @param {string} mediaId @param {'s'|'m'|'l'} [size]
 */
function setUrl(el, attr, mediaId, size) {
  const now = cachedMediaUrl(mediaId, size);
  if (now) { el.setAttribute(attr, now); return; }
  mediaUrl(mediaId, size).then((url) => { if (url) el.setAttribute(attr, url); });
}

/** The shown size of a photo fitting THUMB_PX, when its size is known. @param {{width?: number, height?: number}} item @param {HTMLImageElement} img */
function sizePhoto(img, item) {
  const w = Number(item.width) || 0;
  const hgt = Number(item.height) || 0;
  if (!w || !hgt) return;
  const scale = Math.min(1, THUMB_PX / Math.max(w, hgt));
  img.width = Math.max(1, Math.round(w * scale));
  img.height = Math.max(1, Math.round(hgt * scale));
}

/**
 * A photo thumbnail that opens the viewer (a click, Enter or Space): the
 * image itself takes focus, so it keeps its role and its name.
 * @param {string} alt @param {() => void} open
 */
function photoImage(alt, open) {
  const img = /** @type {HTMLImageElement} */ (h('img', 'media-photo'));
  img.alt = alt;
  img.tabIndex = 0;
  img.decoding = 'async';
  img.title = 'Open full size';
  img.addEventListener('click', open);
  img.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); }
  });
  return img;
}

/**
 * The media part of a sent message's bubble.
 * @param {{kind: string, text?: string, media?: MediaItem[]}} m
 * @returns {HTMLElement|null}
 */
export function mediaPart(m) {
  const item = Array.isArray(m.media) ? m.media[0] : undefined;
  if (!item || !item.media_id) return null;
  const id = item.media_id;
  const box = h('div', `media kind-${m.kind}`);
  if (m.kind === 'image') {
    const alt = m.text || 'Photo';
    const img = photoImage(alt, () => openPhotoViewer(id, alt, img));
    sizePhoto(img, item);
    // GIFs keep their animation only as uploaded; the thumbnails are stills.
    const gif = item.content_type === 'image/gif';
    let full = gif;
    img.addEventListener('error', () => {
      // No thumbnail (a large image, or one still being made): the full size.
      if (full) return;
      full = true;
      setUrl(img, 'src', id);
    });
    // My photo sent from here a moment ago: the file as picked, no flash while its URL comes.
    const local = localPreview(id);
    if (local) img.src = local; else setUrl(img, 'src', id, gif ? undefined : 'm');
    box.append(img);
  } else if (m.kind === 'video') {
    const video = /** @type {HTMLVideoElement} */ (h('video', 'media-video'));
    video.controls = true;
    video.preload = 'metadata';
    video.playsInline = true;
    video.setAttribute('aria-label', m.text || 'Video');
    setUrl(video, 'src', id);
    box.append(video);
  } else if (m.kind === 'audio') {
    const audio = /** @type {HTMLAudioElement} */ (h('audio', 'media-audio'));
    audio.controls = true;
    audio.preload = 'metadata';
    audio.setAttribute('aria-label', mediaLabel({ kind: 'audio', media: [item] }));
    knowDuration(audio);
    setUrl(audio, 'src', id);
    box.append(audio);
  } else {
    box.append(fileLink(item));
  }
  return box;
}

/**
 * Make a player show its length. A recording made by MediaRecorder (WebM)
 * has no duration in its header: the browser says Infinity until it has
 * read to the end, so seek far once to make it read there, then back.
 * @param {HTMLMediaElement} el
 */
function knowDuration(el) {
  el.addEventListener('loadedmetadata', () => {
    if (el.duration !== Infinity) return;
    const back = () => {
      if (el.duration === Infinity) return;
      el.removeEventListener('durationchange', back);
      el.currentTime = 0;
    };
    el.addEventListener('durationchange', back);
    el.currentTime = 1e101;
  }, { once: true });
}

/**
 * A file's download link (named by its file name; the server answers with
 * an attachment of that name) and its size.
 * @param {MediaItem} item
 */
function fileLink(item) {
  const row = h('div', 'media-file-row');
  const name = item.filename || 'File';
  const a = /** @type {HTMLAnchorElement} */ (h('a', 'media-file', name));
  a.download = name;
  a.dir = 'auto';
  a.title = `Download ${name}`;
  setUrl(a, 'href', item.media_id);
  a.addEventListener('click', (e) => {
    // Capability URLs expire after minutes: an old one is swapped first.
    if (cachedMediaUrl(item.media_id) === a.getAttribute('href')) return;
    e.preventDefault();
    mediaUrl(item.media_id).then((url) => {
      if (!url) return;
      a.href = url;
      a.click();
    });
  });
  row.append(a, h('span', 'media-size', sizeText(item.size)));
  return row;
}

/**
 * The media part of an unsent message: the file as picked (a photo's
 * preview), and while it is not uploaded, the progress bar and "Cancel upload".
 * @param {OutboxItem} o
 */
export function pendingMediaPart(o) {
  const item = o.media;
  if (!item) return null;
  const box = h('div', `media kind-${o.kind} pending`);
  const label = mediaLabel({ kind: o.kind, media: [/** @type {MediaItem} */ (item)] });
  if (o.kind === 'image') {
    const alt = o.text || 'Photo';
    const img = photoImage(alt, () => { const u = previewUrl(o.client_msg_id); if (u) openPhotoViewer('', alt, img, u); });
    sizePhoto(img, item);
    const src = previewUrl(o.client_msg_id);
    if (src) img.src = src;
    else keptFile(o.client_msg_id).then((f) => { if (f) img.src = previewUrl(o.client_msg_id); });
    box.append(img);
  } else {
    const row = h('div', 'media-file-row');
    row.append(h('span', 'media-file', label), h('span', 'media-size', sizeText(item.size)));
    box.append(row);
  }
  if (!item.media_id && !o.failed) {
    const up = h('div', 'upload');
    const bar = /** @type {HTMLProgressElement} */ (h('progress'));
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute('aria-label', `Uploading ${item.filename || label}`);
    const status = h('span', 'upload-status');
    const cancel = h('button', 'link-btn upload-cancel', 'Cancel upload');
    /** @type {HTMLButtonElement} */ (cancel).type = 'button';
    cancel.addEventListener('click', () => { outbox.cancelUpload(o.client_msg_id); scheduleRender(); });
    up.append(bar, status, cancel);
    box.append(up);
  }
  return box;
}

/** Bring an unsent bubble's progress bar up to date (every render; the bubble is not rebuilt). @param {HTMLElement} el @param {OutboxItem} o */
export function paintUpload(el, o) {
  const bar = /** @type {HTMLProgressElement|null} */ (el.querySelector('.upload progress'));
  if (!bar) return;
  const p = outbox.uploadProgress(o.client_msg_id);
  const status = /** @type {HTMLElement} */ (el.querySelector('.upload-status'));
  if (p === null) {
    status.textContent = 'Waiting to upload…';
    bar.value = 0;
  } else {
    bar.value = p;
    status.textContent = `${Math.round(p * 100)}%`;
  }
}

// Media (protocol §9) as the client handles it: which kind a file is sent
// as and under which declared type, uploading it (SHA-256, upload slot, the
// bytes PUT to the URL the slot names with the headers it names — Parley
// itself on `local`, a presigned bucket URL on `s3` — with progress and
// abort, then `complete`), the capability URLs that `<img>`, `<audio>`,
// `<video>` and download links use, and the files of unsent media messages
// kept in IndexedDB so the outbox survives a reload.

import { ApiError } from './api.js';
import { api } from './session.js';

/** @typedef {import('./api.js').MediaItem} MediaItem */
/**
 * The verified media `complete` answers with.
 * @typedef {{media_id: string, status: string, content_type: string, size: number,
 *   width?: number, height?: number, duration_ms?: number}} MediaView
 */

/**
 * The types the server accepts by default (`media_allowed_types`,
 * `crates/parley-server/src/config.rs`). A file of any other type goes as
 * `application/octet-stream`: a plain attachment, which the server serves
 * with its file name.
 */
const UPLOAD_TYPES = [
  'image/jpeg', 'image/png', 'image/gif', 'image/webp',
  'video/mp4', 'video/webm', 'video/quicktime',
  'audio/mpeg', 'audio/ogg', 'audio/webm', 'audio/mp4', 'audio/wav',
  'application/pdf', 'application/zip', 'text/plain', 'application/octet-stream',
];

/** Common aliases, folded as the server folds them (`media/verify.rs`). */
const ALIASES = /** @type {Record<string, string>} */ ({
  'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg', 'audio/x-wav': 'audio/wav', 'audio/wave': 'audio/wav',
  'audio/mp3': 'audio/mpeg', 'audio/x-m4a': 'audio/mp4', 'audio/m4a': 'audio/mp4',
  'application/x-zip-compressed': 'application/zip',
});

/** Headers a page may not set on a request (the browser sets them itself). */
const FORBIDDEN_HEADERS = ['content-length', 'host', 'connection', 'accept-encoding'];

/** A capability URL is asked for again this long before it expires. */
const URL_MARGIN_MS = 30000;
/** A media whose URL was refused (not readable, gone) is not asked for again for this long. */
const URL_REFUSED_MS = 60000;

/** The type a file is declared as: its own when the server takes it, else a plain attachment. @param {{type?: string}} file */
export function declaredType(file) {
  const base = String(file.type || '').split(';')[0].trim().toLowerCase();
  const t = ALIASES[base] || base;
  return UPLOAD_TYPES.includes(t) ? t : 'application/octet-stream';
}

/**
 * The message kind for a declared type: photos the server decodes, any
 * video, any audio; everything else is a file.
 * @param {string} contentType
 * @returns {'image'|'video'|'audio'|'file'}
 */
export function kindFor(contentType) {
  if (['image/jpeg', 'image/png', 'image/gif', 'image/webp'].includes(contentType)) return 'image';
  if (contentType.startsWith('video/')) return 'video';
  if (contentType.startsWith('audio/')) return 'audio';
  return 'file';
}

/** The standard base64 of the SHA-256 of `blob`. @param {Blob} blob */
export async function sha256Base64(blob) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
  let bin = '';
  for (const b of digest) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** An upload the user stopped. */
export class UploadAborted extends Error {
  constructor() { super('upload cancelled'); this.name = 'UploadAborted'; }
}

/**
 * PUT `blob` to `url` with `headers`, reporting progress (0–1). The bytes go
 * with XMLHttpRequest, the one browser API with upload progress events.
 * @param {string} url @param {Record<string, string>} headers @param {Blob} blob
 * @param {(fraction: number) => void} onProgress @param {(abort: () => void) => void} onStart
 * @returns {Promise<void>}
 */
function putBytes(url, headers, blob, onProgress, onStart) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers || {})) {
      if (!FORBIDDEN_HEADERS.includes(k.toLowerCase())) xhr.setRequestHeader(k, v);
    }
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable && e.total) onProgress(e.loaded / e.total); });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) { onProgress(1); resolve(); return; }
      const status = xhr.status;
      // Parley (`local`) answers with the protocol's error body; a bucket with its own.
      let code = status === 403 ? 'forbidden' : status === 413 ? 'payload_too_large' : status === 409 ? 'conflict'
        : status >= 500 ? 'unavailable' : 'bad_request';
      try { code = JSON.parse(xhr.responseText).error.code || code; } catch { /* not ours */ }
      reject(new ApiError(status, code, `upload refused (${status})`));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'upload failed')));
    xhr.addEventListener('abort', () => reject(new UploadAborted()));
    onStart(() => xhr.abort());
    // `send` is the request's own method here; `.send(` with anything but a
    // frame builder's result is the socket check of tests/web/modules.test.mjs.
    const start = xhr.send.bind(xhr);
    start(blob);
  });
}

/**
 * Upload `blob`: slot, bytes, `complete`. `abort()` stops it at any step
 * (the half-made media is the server's to collect); `done` rejects with
 * `UploadAborted` then, or the `ApiError` of the step that failed.
 * @param {Blob} blob
 * @param {{filename?: string, contentType: string, onProgress?: (fraction: number) => void}} opts
 * @returns {{done: Promise<MediaView>, abort: () => void}}
 */
export function upload(blob, opts) {
  let aborted = false;
  let stop = () => {};
  const onProgress = opts.onProgress || (() => {});
  const check = () => { if (aborted) throw new UploadAborted(); };
  const done = (async () => {
    const sha256 = await sha256Base64(blob);
    check();
    /** @type {{content_type: string, size: number, sha256: string, filename?: string}} */
    const body = { content_type: opts.contentType, size: blob.size, sha256 };
    if (opts.filename) body.filename = opts.filename.slice(0, 255);
    const slot = await api.createMedia(body);
    check();
    await putBytes(slot.upload.url, slot.upload.headers, blob, onProgress, (fn) => { stop = fn; });
    check();
    return /** @type {MediaView} */ (await api.completeMedia(slot.media_id));
  })();
  return {
    done,
    abort() { aborted = true; stop(); },
  };
}

// --- capability URLs ---------------------------------------------------------

/** `<media_id>:<size>` → the URL and when it expires, or a request in flight, or a refusal's time. */
const urls = /** @type {Map<string, {url?: string, expires?: number, pending?: Promise<string|null>, refusedAt?: number}>} */ (new Map());

/**
 * A capability URL for `mediaId` (its thumbnail `size`, or the full media),
 * from the cache while it has some life left. Null when the server refuses
 * (not readable by me, or gone).
 * @param {string} mediaId @param {'s'|'m'|'l'} [size]
 * @returns {Promise<string|null>}
 */
export function mediaUrl(mediaId, size) {
  const key = `${mediaId}:${size || ''}`;
  const now = Date.now();
  const hit = urls.get(key);
  if (hit && hit.url && (hit.expires || 0) - URL_MARGIN_MS > now) return Promise.resolve(hit.url);
  if (hit && hit.pending) return hit.pending;
  if (hit && hit.refusedAt && now - hit.refusedAt < URL_REFUSED_MS) return Promise.resolve(null);
  const pending = api.mediaUrl(mediaId, size).then((r) => {
    urls.set(key, { url: r.url, expires: r.expires_at_ms });
    return r.url;
  }).catch((e) => {
    // A network failure may pass; a refusal holds for a while.
    if (e instanceof ApiError && e.code !== 'network') urls.set(key, { refusedAt: Date.now() });
    else urls.delete(key);
    return null;
  });
  urls.set(key, { pending });
  return pending;
}

/** The URL `mediaUrl` has for this, when it is still good for a while (no request). @param {string} mediaId @param {'s'|'m'|'l'} [size] */
export function cachedMediaUrl(mediaId, size) {
  const hit = urls.get(`${mediaId}:${size || ''}`);
  return hit && hit.url && (hit.expires || 0) - URL_MARGIN_MS > Date.now() ? hit.url : '';
}

// --- files of unsent media messages ------------------------------------------

/** Files by outbox `client_msg_id`, in memory (IndexedDB keeps them across reloads). */
const blobs = /** @type {Map<string, Blob>} */ (new Map());
/** Object URLs made for previews, by the same key. */
const previews = /** @type {Map<string, string>} */ (new Map());

const DB_NAME = 'parley-media';
const DB_STORE = 'outbox-files';

/** @returns {Promise<IDBDatabase|null>} */
function openDb() {
  return new Promise((resolve) => {
    if (typeof indexedDB === 'undefined') { resolve(null); return; }
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => { req.result.createObjectStore(DB_STORE); };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => resolve(null);
  });
}

/**
 * One IndexedDB request on the files store; best effort, like localStorage.
 * @param {'readonly'|'readwrite'} mode @param {(s: IDBObjectStore) => IDBRequest} fn
 * @returns {Promise<any>}
 */
async function dbDo(mode, fn) {
  const db = await openDb();
  if (!db) return null;
  return new Promise((resolve) => {
    try {
      const tx = db.transaction(DB_STORE, mode);
      const req = fn(tx.objectStore(DB_STORE));
      tx.oncomplete = () => { db.close(); resolve(req.result); };
      tx.onerror = () => { db.close(); resolve(null); };
      tx.onabort = () => { db.close(); resolve(null); };
    } catch {
      db.close();
      resolve(null);
    }
  });
}

/** Keep the file of an unsent message (memory now, IndexedDB for a reload). @param {string} key @param {Blob} blob */
export function keepFile(key, blob) {
  blobs.set(key, blob);
  return dbDo('readwrite', (s) => s.put(blob, key));
}

/** The kept file of an unsent message, or null. @param {string} key @returns {Promise<Blob|null>} */
export async function keptFile(key) {
  const b = blobs.get(key);
  if (b) return b;
  const stored = await dbDo('readonly', (s) => s.get(key));
  if (stored instanceof Blob) { blobs.set(key, stored); return stored; }
  return null;
}

/** An object URL showing the kept file ('' when it is not in memory; `keptFile` loads it). @param {string} key */
export function previewUrl(key) {
  let url = previews.get(key);
  if (url) return url;
  const b = blobs.get(key);
  if (!b) return '';
  url = URL.createObjectURL(b);
  previews.set(key, url);
  return url;
}

/** Previews of my just-uploaded photos by media id: the sent bubble shows the file at once. */
const uploadedPreviews = /** @type {Map<string, string>} */ (new Map());

/** The file of outbox item `key` is media `mediaId` now. @param {string} key @param {string} mediaId */
export function uploaded(key, mediaId) {
  const url = previews.get(key);
  if (url) uploadedPreviews.set(mediaId, url);
}

/** A local preview of my photo `mediaId`, sent a moment ago from here, or ''. @param {string} mediaId */
export function localPreview(mediaId) { return uploadedPreviews.get(mediaId) || ''; }

/** How long a sent photo's local preview stays (its bubble then uses the server's thumbnail). */
const PREVIEW_KEEP_MS = 60000;

/** The message was sent or discarded: drop its file. @param {string} key */
export function forgetFile(key) {
  blobs.delete(key);
  const url = previews.get(key);
  // The sent bubble may still show the preview for a while: revoke later.
  if (url) {
    setTimeout(() => {
      URL.revokeObjectURL(url);
      for (const [id, u] of uploadedPreviews) if (u === url) uploadedPreviews.delete(id);
    }, PREVIEW_KEEP_MS);
  }
  previews.delete(key);
  return dbDo('readwrite', (s) => s.delete(key));
}

/** Forget everything in memory (log out; IndexedDB keeps the files of the stored outbox). */
export function reset() {
  blobs.clear();
  for (const url of previews.values()) URL.revokeObjectURL(url);
  previews.clear();
  uploadedPreviews.clear();
  urls.clear();
}

/** "1.2 MB", "340 KB", "12 bytes". @param {number} n */
export function sizeText(n) {
  if (!(n >= 0)) return '';
  if (n < 1000) return `${n} byte${n === 1 ? '' : 's'}`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v >= 10 ? Math.round(v) : Math.round(v * 10) / 10} ${units[i]}`;
}

/**
 * What a media message is called where only a line fits (the chat list,
 * a quote, the reply bar): its caption, else "Photo", "Video", "Voice
 * message" or its file name.
 * @param {{kind?: string, text?: string, media?: MediaItem[]|{filename?: string}}} m
 */
export function mediaLabel(m) {
  if (m.text) return m.text;
  // A message carries a list; an outbox item its one media.
  const item = Array.isArray(m.media) ? m.media[0] : m.media;
  switch (m.kind) {
    case 'image': return 'Photo';
    case 'video': return 'Video';
    // A recorded voice note has no file name; an audio file keeps its own.
    case 'audio': return item && item.filename ? 'Audio' : 'Voice message';
    case 'file': return (item && item.filename) || 'File';
    default: return '';
  }
}

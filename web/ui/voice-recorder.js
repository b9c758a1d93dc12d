// Voice notes: "Record voice message" records the microphone with
// MediaRecorder; while it runs the composer gives way to "Stop recording"
// (then a player to listen first), "Send voice message" and "Cancel
// recording". The note is sent as an `audio` message through the outbox.

import { openConv } from '../model.js';
import * as outbox from '../outbox.js';
import { $ } from './dom.js';
import { replyTarget, cancelReply } from './reply.js';
import { toast } from './toast.js';
import { scheduleRender } from './refresh.js';

/** Containers to record in, best first (Chromium and Firefox: WebM/Opus; Safari: MP4). */
const MIME_TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];

/**
 * The recording under way or waiting to be sent.
 * @type {{convId: string, recorder: MediaRecorder, stream: MediaStream, chunks: Blob[], startedMs: number,
 *   timer: any, blob: Blob|null, stopped: Promise<Blob>, previewUrl: string}|null}
 */
let rec = null;

/** Whether this browser can record. */
function supported() {
  return typeof MediaRecorder !== 'undefined' && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

/** "0:07" @param {number} ms */
function clock(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Show the recorder bar (or the composer again) for the current state. */
function paint() {
  $('recorder').hidden = !rec;
  // The composer comes back by the next render (it knows whether the chat takes messages).
  if (!rec) { scheduleRender(); return; }
  $('composer').hidden = true;
  const recording = !rec.blob;
  $('recorder-stop').hidden = !recording;
  $('recorder-dot').hidden = !recording;
  const preview = /** @type {HTMLAudioElement} */ ($('recorder-preview'));
  preview.hidden = recording;
  $('recorder-status').textContent = recording ? `Recording ${clock(Date.now() - rec.startedMs)}` : 'Listen before sending';
}

/** Release the microphone and forget the recording. */
function finish() {
  if (!rec) return;
  clearInterval(rec.timer);
  for (const t of rec.stream.getTracks()) t.stop();
  if (rec.recorder.state !== 'inactive') rec.recorder.stop();
  if (rec.previewUrl) URL.revokeObjectURL(rec.previewUrl);
  const preview = /** @type {HTMLAudioElement} */ ($('recorder-preview'));
  preview.removeAttribute('src');
  rec = null;
  paint();
}

async function start() {
  const c = openConv();
  if (!c || rec || !supported()) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    toast('Parley can’t use the microphone. Allow it in the browser’s site settings to record voice messages.');
    return;
  }
  const mimeType = MIME_TYPES.find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
  /** @type {Blob[]} */
  const chunks = [];
  recorder.addEventListener('dataavailable', (e) => { if (e.data && e.data.size) chunks.push(e.data); });
  const stopped = new Promise((resolve) => {
    // The container is sent as the upload's declared type (see `send`), not as the Blob's.
    recorder.addEventListener('stop', () => resolve(new Blob(chunks)));
  });
  rec = { convId: c.id, recorder, stream, chunks, startedMs: Date.now(), timer: null, blob: null, stopped: /** @type {Promise<Blob>} */ (stopped), previewUrl: '' };
  rec.timer = setInterval(paint, 500);
  recorder.start(250);
  paint();
  /** @type {HTMLElement} */ ($('recorder-stop')).focus();
}

/** Stop recording and offer the note to listen to. */
async function stop() {
  if (!rec || rec.blob) return;
  const r = rec;
  clearInterval(r.timer);
  r.recorder.stop();
  for (const t of r.stream.getTracks()) t.stop();
  const blob = await r.stopped;
  if (rec !== r) return;
  r.blob = blob;
  r.previewUrl = URL.createObjectURL(blob);
  /** @type {HTMLAudioElement} */ ($('recorder-preview')).src = r.previewUrl;
  paint();
  /** @type {HTMLElement} */ ($('recorder-send')).focus();
}

/** Send the note (stopping the recording first when it still runs). */
async function send() {
  if (!rec) return;
  const r = rec;
  if (!r.blob) await stop();
  if (rec !== r || !r.blob) return;
  const blob = r.blob;
  const contentType = (r.recorder.mimeType || 'audio/webm').split(';')[0];
  const reply = replyTarget(r.convId) || undefined;
  finish();
  if (!blob.size) { toast('Nothing was recorded.', 'warn'); return; }
  outbox.sendFile(r.convId, blob, { kind: 'audio', contentType, filename: '', replyToSeq: reply });
  if (reply) cancelReply();
  /** @type {HTMLElement} */ ($('composer-input')).focus();
}

/** Whether a voice note is being recorded or waits to be sent (the composer gives way). */
export function isRecording() { return !!rec; }

/** Another chat opened, or the session ended: a recording in progress is dropped. */
export function cancelRecording() {
  finish();
}

/** Wire the voice note buttons (boot); hidden where the browser cannot record. */
export function setupVoiceRecorder() {
  const btn = $('record-button');
  btn.hidden = !supported();
  btn.addEventListener('click', () => { start(); });
  $('recorder-stop').addEventListener('click', () => { stop(); });
  $('recorder-send').addEventListener('click', () => { send(); });
  $('recorder-cancel').addEventListener('click', () => {
    finish();
    /** @type {HTMLElement} */ ($('composer-input')).focus();
  });
  $('recorder').addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.stopPropagation(); finish(); /** @type {HTMLElement} */ ($('composer-input')).focus(); }
  });
}

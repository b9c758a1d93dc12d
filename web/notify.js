// Alerts for new messages and this device's push registration (§12): the
// local "Notifications" and "Sounds" switches, subscribing/unsubscribing the
// service worker's push subscription, and — while the tab is open but
// hidden — a desktop notification, a short beep and an unread count in the
// title and favicon for each new message in a chat that is not muted.
// Permission is only asked from the settings switch, never on load.

import { mediaLabel } from './media.js';
import * as store from './store.js';
import { api } from './session.js';

/** Messages that arrived while the tab was hidden (cleared when it shows). */
let hiddenCount = 0;
/** The favicon's own href, restored when the count clears. */
let baseIcon = '';
/** @type {AudioContext|null} */
let audio = null;
/** Called after the count changes (the title is drawn by the sidebar). */
let onCountChange = () => {};

/** Whether desktop notifications are on here (switch on and permission granted). */
export function notificationsOn() {
  return store.loadAlertPrefs().notifications && typeof Notification === 'function' && Notification.permission === 'granted';
}

/** Whether the beep is on (default on). */
export function soundsOn() { return store.loadAlertPrefs().sounds; }

/** @param {boolean} on */
export function setSounds(on) { store.saveAlertPrefs({ ...store.loadAlertPrefs(), sounds: on }); }

/** The number shown in the title and favicon while hidden. */
export function hiddenUnread() { return hiddenCount; }

/**
 * Switch notifications on (asks permission — a user action) or off; on
 * subscribes this device for push, off unsubscribes it. Resolves whether
 * they are on afterwards.
 * @param {boolean} on
 */
export async function setNotifications(on) {
  if (on) {
    if (typeof Notification !== 'function') return false;
    const perm = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    if (perm !== 'granted') return false;
    store.saveAlertPrefs({ ...store.loadAlertPrefs(), notifications: true });
    await subscribePush();
    return true;
  }
  store.saveAlertPrefs({ ...store.loadAlertPrefs(), notifications: false });
  await unsubscribePush();
  return false;
}

/**
 * Register the service worker (`sw.js`, also the offline app shell) and, when
 * notifications are on, this device's push subscription. Never asks for
 * permission itself.
 */
export async function setupPush() {
  if (!('serviceWorker' in navigator)) return;
  try {
    await navigator.serviceWorker.register('/sw.js');
    if (notificationsOn()) await subscribePush();
  } catch {
    // Push is a nicety: without it, messages still arrive when the app is open.
  }
}

async function subscribePush() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) return;
  try {
    const reg = await navigator.serviceWorker.register('/sw.js');
    const { public_key: key } = await api.pushVapidKey();
    const raw = atob(key.replace(/-/g, '+').replace(/_/g, '/'));
    const applicationServerKey = Uint8Array.from(raw, (ch) => ch.charCodeAt(0));
    const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
    const { endpoint, keys } = sub.toJSON();
    if (endpoint && keys) await api.registerPush({ kind: 'webpush', endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
  } catch {
    // No push service (headless browsers have none): the tab still alerts while open.
  }
}

async function unsubscribePush() {
  try {
    if ('serviceWorker' in navigator) {
      const reg = await navigator.serviceWorker.getRegistration();
      const sub = reg && reg.pushManager ? await reg.pushManager.getSubscription() : null;
      if (sub) await sub.unsubscribe();
    }
  } catch { /* nothing to undo */ }
  await api.unregisterPush().catch(() => {});
}

/**
 * A new message from someone else arrived live. Alerts only while the tab is
 * hidden and the chat is not muted.
 * @param {{conversation_id: string, text?: string}} m @param {string} title the chat's name
 * @param {boolean} muted @param {boolean} preview show the text (the "Message previews" setting)
 */
export function alertNewMessage(m, title, muted, preview) {
  if (document.visibilityState !== 'hidden' || muted) return;
  hiddenCount += 1;
  drawBadge();
  onCountChange();
  if (notificationsOn()) {
    try {
      const n = new Notification(title, {
        body: preview && (m.text || mediaLabel(m)) ? (m.text || mediaLabel(m)) : 'New message',
        tag: `chat-${m.conversation_id}`, icon: '/favicon.svg',
      });
      n.onclick = () => { window.focus(); location.hash = `#/c/${encodeURIComponent(m.conversation_id)}`; n.close(); };
    } catch { /* some browsers only allow notifications from the service worker */ }
  }
  if (soundsOn()) beep();
}

/** A short 880 Hz beep through WebAudio (no asset). */
function beep() {
  try {
    audio = audio || new AudioContext();
    // Created without a gesture it may start suspended; the page has had one by now.
    if (audio.state === 'suspended') audio.resume().catch(() => {});
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.2);
  } catch { /* no audio: silent */ }
}

/** The favicon with a red count badge while hidden; the plain one otherwise. */
function drawBadge() {
  const link = /** @type {HTMLLinkElement|null} */ (document.querySelector('link[rel="icon"]'));
  if (!link) return;
  if (!baseIcon) baseIcon = link.href;
  if (!hiddenCount) { link.href = baseIcon; link.type = 'image/svg+xml'; return; }
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 32;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const paint = (/** @type {HTMLImageElement|null} */ img) => {
    if (img) ctx.drawImage(img, 0, 0, 32, 32);
    ctx.fillStyle = '#d93025';
    ctx.beginPath();
    ctx.arc(22, 10, 10, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = '#fff';
    ctx.font = 'bold 14px sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(hiddenCount > 9 ? '9+' : String(hiddenCount), 22, 11);
    link.type = 'image/png';
    link.href = canvas.toDataURL('image/png');
  };
  const img = new Image();
  img.onload = () => paint(img);
  img.onerror = () => paint(null);
  img.src = baseIcon;
}

/** Start following visibility (boot). @param {() => void} changed runs when the count changes */
export function setupAlerts(changed) {
  onCountChange = changed;
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'hidden' && hiddenCount) {
      hiddenCount = 0;
      drawBadge();
      onCountChange();
    }
  });
}

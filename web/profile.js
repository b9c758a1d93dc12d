// My profile and account settings (§2, §6, §11, §12): display name, photo, who sees my
// last seen, read receipts, message previews in pushes, and my linked devices (logging another one out).
// Read from `GET /v1/me`; every change goes to the server first.

import { api, currentSession } from './session.js';
import { rememberUser } from './users.js';
import { scheduleRender } from './ui/refresh.js';

/**
 * @typedef {{device_id: string, device_name?: string, created_at_ms?: number}} Device
 * @typedef {{user_id: string, username: string, display_name: string, avatar_media_id?: string,
 *   presence_visibility: 'everyone'|'nobody', read_receipts: boolean, push_previews: boolean, devices: Device[]}} Me
 */

/** What `GET /v1/me` said last, or null before it answered. */
let meInfo = /** @type {Me|null} */ (null);

/** @returns {Me|null} */
export function profile() { return meInfo; }

/** Forget it (log out). */
export function resetProfile() { meInfo = null; }

/** Read my profile (throws the `ApiError` of a refusal). */
export async function loadProfile() {
  const u = await api.me();
  meInfo = {
    ...u,
    presence_visibility: u.presence_visibility === 'nobody' ? 'nobody' : 'everyone',
    read_receipts: u.read_receipts !== false,
    push_previews: u.push_previews === true,
    devices: Array.isArray(u.devices) ? u.devices : [],
  };
  if (u && u.username) rememberUser(u);
  scheduleRender();
  return meInfo;
}

/** Change my display name (1–64 characters after trimming). @param {string} name */
export async function setDisplayName(name) {
  const u = await api.updateProfile({ display_name: name.trim() });
  rememberUser(u);
  if (meInfo) meInfo.display_name = u.display_name;
  scheduleRender();
}

/** My profile photo: a media id (uploaded), or '' to remove it. @param {string} mediaId */
export async function setAvatar(mediaId) {
  const u = await api.updateProfile({ avatar_media_id: mediaId });
  rememberUser({ ...u, avatar_media_id: u.avatar_media_id || '' });
  if (meInfo) meInfo.avatar_media_id = u.avatar_media_id || '';
  scheduleRender();
}

/** @param {{presence_visibility?: 'everyone'|'nobody', read_receipts?: boolean, push_previews?: boolean}} change */
export async function updateAccountSettings(change) {
  const res = await api.updateSettings(change);
  if (meInfo) Object.assign(meInfo, change, res || {});
}

/** Log another of my devices out. @param {string} deviceId */
export async function revokeDevice(deviceId) {
  await api.revokeDevice(deviceId);
  if (meInfo) meInfo.devices = meInfo.devices.filter((d) => d.device_id !== deviceId);
}

/** This browser's device id. */
export function currentDeviceId() {
  const s = currentSession();
  return s ? s.device_id : '';
}

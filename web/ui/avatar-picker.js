// Choosing a photo for a profile (Settings) or a group (the group panel):
// the avatar as it shows, "Change … photo" (an image chooser; the photo is
// uploaded like any media, then named by the profile or group) and
// "Remove … photo".

import { ApiError } from '../api.js';
import { upload, declaredType, kindFor } from '../media.js';
import { errorText } from '../format.js';
import { h, paintAvatar } from './dom.js';

/**
 * A photo setting. `save(mediaId)` stores the choice on the server (`''`
 * removes the photo) and resolves when it is done.
 * @param {{what: string, name: string, group?: boolean, mediaId: string, save: (mediaId: string) => Promise<void>}} opts
 *   `what`: "profile" or "group", in the buttons' names
 */
export function avatarPicker(opts) {
  let current = opts.mediaId;
  const row = h('div', 'avatar-setting');
  const av = h('span', 'avatar large');
  av.setAttribute('aria-hidden', 'true');
  const actions = h('div', 'avatar-setting-actions');
  const change = /** @type {HTMLButtonElement} */ (h('button', 'btn secondary small', `Change ${opts.what} photo`));
  change.type = 'button';
  // The chooser's input is never in the page: the composer's stays its one file input.
  const input = /** @type {HTMLInputElement} */ (h('input'));
  input.type = 'file';
  input.accept = 'image/jpeg,image/png,image/gif,image/webp';
  const remove = /** @type {HTMLButtonElement} */ (h('button', 'btn ghost small', `Remove ${opts.what} photo`));
  remove.type = 'button';
  const status = h('p', 'settings-status');
  status.setAttribute('role', 'status');
  actions.append(change, remove);
  row.append(av, actions, status);

  const paint = () => {
    paintAvatar(av, opts.name, !!opts.group, current);
    remove.hidden = !current;
  };
  paint();

  /** @param {string} mediaId @param {string} done */
  const store = async (mediaId, done) => {
    await opts.save(mediaId);
    current = mediaId;
    paint();
    status.textContent = done;
  };

  change.addEventListener('click', () => {
    input.value = '';
    input.click();
  });
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    const contentType = declaredType(file);
    if (kindFor(contentType) !== 'image') { status.textContent = 'Choose a JPEG, PNG, GIF or WebP image.'; return; }
    change.disabled = true;
    remove.disabled = true;
    status.textContent = 'Uploading photo…';
    try {
      const view = await upload(file, { contentType, filename: file.name }).done;
      await store(view.media_id, 'Photo saved.');
    } catch (e) {
      status.textContent = errorText(e instanceof ApiError ? e.code : 'upload_failed', { context: 'media' });
    } finally {
      change.disabled = false;
      remove.disabled = false;
    }
  });
  remove.addEventListener('click', async () => {
    remove.disabled = true;
    try {
      await store('', 'Photo removed.');
      change.focus();
    } catch (e) {
      status.textContent = errorText(e instanceof ApiError ? e.code : 'internal');
    } finally {
      remove.disabled = false;
    }
  });
  return row;
}

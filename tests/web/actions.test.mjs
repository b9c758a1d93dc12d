// The message menu end to end in two browsers: reply (quote, jump to the
// original), inline edit ("edited"), delete for everyone and for me,
// reactions (quick row, picker, counts, who, toggling), forward to several
// chats, copy, and per-member info in a group; right-click and a long press
// open the menu too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, startDirectChat, sendMessage, waitText, waitCount,
  waitVisible, waitTick, until, shot, bubbleTexts,
} from './helpers.mjs';

/** @type {import('./helpers.mjs').Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
});

/** The bubble (`.msg`) holding `text` on `page`. @param {import('playwright-core').Page} page @param {string} text */
function bubble(page, text) {
  return page.locator('#message-items .msg').filter({ has: page.locator('.text', { hasText: text }) }).last();
}

/** Open the menu of the message with `text` and choose `item`. */
async function act(page, text, item) {
  const b = bubble(page, text);
  await b.hover();
  await b.getByRole('button', { name: 'Message actions' }).click();
  await page.getByRole('menu').getByRole('menuitem', { name: item, exact: true }).click();
}

test('reply, edit, delete, react, forward, copy and info', { timeout: 180000 }, async () => {
  const [aliceName, bobName, carolName] = ['alice', 'bob', 'carol'].map(uniqueName);
  const carol = await openUser(browser, server.url, carolName);
  const alice = await openUser(browser, server.url, aliceName);
  const bob = await openUser(browser, server.url, bobName);
  const { page } = alice;

  await startDirectChat(page, bobName);
  await sendMessage(page, 'Where shall we meet?');
  await sendMessage(page, 'I typo’d this mesage');
  await sendMessage(page, 'this one goes away');
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await waitText(bob.page.locator('#message-items'), 'this one goes away');

  // The menu: every item for my own fresh text message; keyboard moves inside.
  const first = bubble(page, 'Where shall we meet?');
  await first.hover();
  await first.getByRole('button', { name: 'Message actions' }).click();
  const menu = page.getByRole('menu');
  await waitVisible(menu);
  assert.deepEqual(await menu.getByRole('menuitem').allTextContents(), ['Reply', 'Edit', 'Delete', 'React', 'Forward', 'Copy', 'Info']);
  await shot(page, 'actions-menu');
  await page.keyboard.press('Escape');
  await waitCount(page.getByRole('menu'), 0);
  // Someone else's message has no Edit; right-click opens the same menu.
  await sendMessage(bob.page, 'By the fountain');
  await waitText(page.locator('#message-items .msg.other').last(), 'By the fountain');
  await bubble(page, 'By the fountain').locator('.bubble').click({ button: 'right' });
  await waitVisible(page.getByRole('menu'));
  assert.deepEqual(await page.getByRole('menu').getByRole('menuitem').allTextContents(), ['Reply', 'Delete', 'React', 'Forward', 'Copy', 'Info']);
  await page.keyboard.press('Escape');
  // A long press on touch opens it too (a touch pointer held still).
  await bubble(page, 'By the fountain').locator('.bubble').evaluate((el) => {
    const r = el.getBoundingClientRect();
    el.dispatchEvent(new PointerEvent('pointerdown', { bubbles: true, pointerType: 'touch', clientX: r.x + 5, clientY: r.y + 5 }));
  });
  await waitVisible(page.getByRole('menu'));
  await page.keyboard.press('Escape');
  await waitCount(page.getByRole('menu'), 0);

  // Reply: the bar above the composer, cancel, reply again and send.
  await act(page, 'By the fountain', 'Reply');
  const bar = page.getByRole('region', { name: 'Replying to' });
  await waitText(bar, 'By the fountain');
  await bar.getByRole('button', { name: 'Cancel reply' }).click();
  await waitCount(page.getByRole('region', { name: 'Replying to' }), 0);
  await act(page, 'Where shall we meet?', 'Reply');
  await waitText(bar, 'Where shall we meet?');
  await sendMessage(page, 'Answering myself: at noon');
  await waitCount(page.getByRole('region', { name: 'Replying to' }), 0);
  const reply = bubble(bob.page, 'Answering myself');
  await waitText(reply.locator('.quote'), 'Where shall we meet?');
  await waitText(bubble(page, 'Answering myself').locator('.quote'), 'Where shall we meet?');
  await shot(bob.page, 'actions-reply');

  // Edit inline: the text changes for both, with "edited".
  await act(page, 'I typo’d this mesage', 'Edit');
  const editBox = page.getByRole('textbox', { name: 'Edit message' });
  await editBox.fill('I typo’d this message');
  await editBox.press('Enter');
  await waitText(bubble(page, 'this message'), 'edited');
  await waitText(bubble(bob.page, 'I typo’d this message'), 'edited');
  assert.ok(!(await bubbleTexts(bob.page)).includes('I typo’d this mesage'));
  await shot(bob.page, 'actions-edited');

  // Delete for everyone: both see "This message was deleted".
  await act(page, 'this one goes away', 'Delete');
  const del = page.getByRole('dialog', { name: 'Delete message?' });
  await waitVisible(del.getByRole('button', { name: 'Delete for me' }));
  await shot(page, 'actions-delete-dialog');
  await del.getByRole('button', { name: 'Delete for everyone' }).click();
  await waitVisible(bob.page.locator('#message-items').getByText('This message was deleted'));
  await waitVisible(page.locator('#message-items').getByText('This message was deleted'));
  assert.ok(!(await bubbleTexts(bob.page)).includes('this one goes away'));
  // Bob may only delete alice's message for himself.
  await act(bob.page, 'Where shall we meet?', 'Delete');
  const bobDel = bob.page.getByRole('dialog', { name: 'Delete message?' });
  await waitVisible(bobDel.getByRole('button', { name: 'Delete for me' }));
  assert.equal(await bobDel.getByRole('button', { name: 'Delete for everyone' }).count(), 0);
  await bobDel.getByRole('button', { name: 'Delete for me' }).click();
  await until(async () => !(await bubbleTexts(bob.page)).includes('Where shall we meet?'), 'hidden for bob');
  assert.ok((await bubbleTexts(page)).includes('Where shall we meet?'), 'still there for alice');

  // React: quick row, counts and who; pressing mine takes it back; the picker.
  await act(bob.page, 'Answering myself', 'React');
  const reactDialog = bob.page.getByRole('dialog', { name: 'React' });
  for (const e of ['👍', '❤️', '😂', '😮', '😢', '🙏']) await waitVisible(reactDialog.getByRole('button', { name: e, exact: true }));
  await shot(bob.page, 'actions-react');
  await reactDialog.getByRole('button', { name: '👍', exact: true }).click();
  await act(page, 'Answering myself', 'React');
  await page.getByRole('dialog', { name: 'React' }).getByRole('button', { name: '👍', exact: true }).click();
  const thumbs = bubble(bob.page, 'Answering myself').getByRole('button', { name: /^👍 2/ });
  await waitVisible(thumbs);
  assert.match(await thumbs.getAttribute('title') || '', new RegExp(`You, ${aliceName}|${aliceName}, You`));
  await waitVisible(bubble(page, 'Answering myself').getByRole('button', { name: /^👍 2/ }));
  await thumbs.click();
  await waitVisible(bubble(page, 'Answering myself').getByRole('button', { name: /^👍 1/ }));
  await act(bob.page, 'Answering myself', 'React');
  await reactDialog.getByRole('button', { name: 'More emoji' }).click();
  await reactDialog.getByRole('button', { name: '🎉', exact: true }).click();
  await waitVisible(bubble(page, 'Answering myself').getByRole('button', { name: /^🎉 1/ }));
  await shot(page, 'actions-reactions');

  // Forward to two chats at once; both show it flagged.
  await startDirectChat(page, carolName);
  await sendMessage(page, 'Hi Carol');
  await page.getByRole('button', { name: 'New group' }).click();
  await page.getByRole('textbox', { name: 'Group name' }).fill('Trio');
  await page.getByRole('textbox', { name: 'Members' }).fill(`${bobName}, ${carolName}`);
  await page.getByRole('button', { name: 'Create group' }).click();
  await waitText(page.locator('#chat-title'), 'Trio');
  await page.getByRole('listitem', { name: bobName }).click();
  await act(page, 'By the fountain', 'Forward');
  const fwd = page.getByRole('dialog', { name: 'Forward to…' });
  await fwd.getByRole('checkbox', { name: carolName }).check();
  await fwd.getByRole('checkbox', { name: 'Trio' }).check();
  await shot(page, 'actions-forward');
  await fwd.getByRole('button', { name: 'Forward' }).click();
  await carol.page.getByRole('listitem', { name: aliceName }).click();
  await waitText(bubble(carol.page, 'By the fountain'), 'Forwarded');
  await carol.page.getByRole('listitem', { name: 'Trio' }).click();
  await waitText(bubble(carol.page, 'By the fountain'), 'Forwarded');

  // Info in the group: carol has read it, bob has not opened the group.
  await page.getByRole('listitem', { name: 'Trio' }).click();
  await waitText(bubble(page, 'By the fountain'), 'Forwarded');
  await until(async () => {
    await act(page, 'By the fountain', 'Info');
    const info = page.getByRole('dialog', { name: 'Message info' });
    await waitVisible(info);
    const text = await info.textContent();
    const ok = new RegExp(`${carolName}\\s*Read`).test(text || '') && text.includes(bobName);
    await shot(page, 'actions-info');
    await info.getByRole('button', { name: 'Close' }).click();
    return ok;
  }, 'carol read it per Info');

  // Copy puts the text on the clipboard.
  await alice.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  await act(page, 'By the fountain', 'Copy');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'By the fountain');

  // A reload shows the same state from history.
  await bob.page.reload();
  await bob.page.getByRole('listitem', { name: aliceName }).click();
  await waitText(bubble(bob.page, 'I typo’d this message'), 'edited');
  await waitVisible(bob.page.locator('#message-items').getByText('This message was deleted'));
  await waitVisible(bubble(bob.page, 'Answering myself').getByRole('button', { name: /^👍 1/ }));
  await waitText(bubble(bob.page, 'Answering myself').locator('.quote'), 'Where shall we meet?');
  assert.ok(!(await bubbleTexts(bob.page)).includes('Where shall we meet?'), 'deleted for me stays deleted after reload');
  // Clicking the quote jumps to the original (alice still has it).
  await page.getByRole('listitem', { name: bobName }).click();
  await bubble(page, 'Answering myself').locator('.quote').click();
  await until(async () => page.locator('#message-items .msg.flash').count(), 'original flashed');
  await waitTick(page, 'Answering myself', 'Read');

  for (const u of [alice, bob, carol]) assert.deepEqual(u.errors, []);
  for (const u of [alice, bob, carol]) await u.context.close();
});

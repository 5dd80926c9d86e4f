/**
 * The web console end to end, in Debian's Chromium driven by playwright-core,
 * against a real server (SQLite, mTLS gateway) and an aktualizr-style test
 * device: sign in (a wrong token is refused), upload an image through the UI
 * with its progress bar, launch an update after a dry run that says who would
 * not be updated and why, follow it from assigned to in flight to completed
 * as the device fetches and installs it, cancel another, manage a group, see
 * a reported attack, and revoke the device's certificate.
 *
 * Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it).
 * Without it the suite is skipped, except under CI where it fails.
 * UPTIDE_SCREENSHOTS=DIR saves a screenshot of each main page there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { TestDevice, makeEcu, provisionDevice, startTestServer, type TestServer } from '../../packages/server/src/testing/harness.js';

const CHROMIUM = process.env['UPTIDE_CHROMIUM'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];
const WEB = fileURLToPath(new URL('../../packages/web/', import.meta.url));
const SHOTS = process.env['UPTIDE_SCREENSHOTS'];
const available = existsSync(CHROMIUM);
if (!available) console.warn(`console tests: no Chromium at ${CHROMIUM} (apt-get install chromium)${process.env['CI'] ? '' : '; skipped'}`);

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((f) => newestMtime(join(path, f))));
}

/** Builds the console unless packages/web/dist is newer than its sources (as after `npm run build`). */
async function ensureBuilt(): Promise<void> {
  const index = join(WEB, 'dist', 'index.html');
  const sources = Math.max(newestMtime(join(WEB, 'src')), newestMtime(join(WEB, 'index.html')), newestMtime(join(WEB, 'vite.config.ts')));
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return;
  const { build } = await import('vite');
  await build({ configFile: join(WEB, 'vite.config.ts'), root: WEB, logLevel: 'warn' });
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

describe.skipIf(!available && !process.env['CI'])('web console in Chromium', () => {
  let ts: TestServer;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  const image = randomBytes(1536 * 1024);
  const sha256 = createHash('sha256').update(image).digest('hex');
  let car1: TestDevice;
  let car2: TestDevice;
  let updateId = '';

  beforeAll(async () => {
    await ensureBuilt();
    ts = await startTestServer();
    profile = mkdtempSync(join(tmpdir(), 'uptide-chromium-'));
    // Playwright takes the profile folder as an argument of its own (never in args).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 860 },
      timeout: 60_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (err) => console.error('page error:', err));
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await ts?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('refuses a wrong token and signs in with the right one', async () => {
    await page.goto(`${ts.adminUrl}/`);
    await expect.poll(() => page.title()).toBe('Sign in · Uptide');
    await expect.poll(() => page.getByText('<data dir>/admin-token').count()).toBe(1);
    await shot(page, 'sign-in');
    await page.getByLabel('API token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('This token was refused: the API token is unknown or revoked.');
    expect(await page.evaluate('sessionStorage.getItem("uptide.token")')).toBeNull();

    await page.getByLabel('API token').fill(ts.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    expect(await page.evaluate('sessionStorage.getItem("uptide.token")')).toBe(ts.token);
    expect(await page.locator('.who').textContent()).toContain('namespace default');
    await page.getByRole('heading', { name: 'Getting started' }).waitFor();
    // A reload keeps the session (sessionStorage) and the page (index.html for every console path).
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  });

  it('uploads an image with a progress bar', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Images' }).click();
    await page.getByRole('heading', { level: 1, name: 'Images' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/images');
    await page.getByLabel('File', { exact: true }).setInputFiles({ name: 'firmware-1.0.bin', mimeType: 'application/octet-stream', buffer: image });
    // Name and version are guessed from the file name.
    expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('firmware');
    expect(await page.getByLabel('Version').inputValue()).toBe('1.0');
    await page.getByLabel('Hardware ids').fill('board-a');
    await page.getByLabel('Release counter (optional)').fill('1');

    // Slow the upload down so that the progress bar shows (Chromium's own network throttling).
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 512 * 1024 });
    await page.getByRole('button', { name: 'Upload' }).click();
    const progress = page.locator('progress#up-progress');
    await progress.waitFor();
    // It moves while the bytes go out.
    await expect.poll(async () => Number((await progress.getAttribute('value').catch(() => null)) ?? -1), { timeout: 10_000 }).toBeGreaterThan(0);
    await shot(page, 'images-uploading');
    await page.getByText('Uploaded firmware-1.0.bin').waitFor({ timeout: 30_000 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await cdp.detach();
    expect(await progress.count()).toBe(0);

    const row = page.getByRole('row').filter({ hasText: 'firmware-1.0.bin' });
    expect(await row.textContent()).toContain('board-a');
    expect(await row.textContent()).toContain('1.50 MiB');
    const listed = await ts.api<{ hashes: Record<string, string>; releaseCounter: number }>('GET', '/api/v1/images/firmware@1.0');
    expect(listed.body.hashes['sha256']).toBe(sha256);
    expect(listed.body.releaseCounter).toBe(1);
    await shot(page, 'images');
  });

  it('shows devices that registered through the gateway', async () => {
    car1 = new TestDevice(ts.gatewayUrl, await provisionDevice(ts, 'car-1'), 'car-1', [makeEcu('car-1-main', 'board-a'), makeEcu('car-1-body', 'board-b')]);
    car2 = new TestDevice(ts.gatewayUrl, await provisionDevice(ts, 'car-2'), 'car-2', [makeEcu('car-2-main', 'board-c')]);
    for (const d of [car1, car2]) {
      expect((await d.registerEcus()).status).toBe(201);
      expect((await d.sendManifest()).status).toBe(200);
    }
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices' }).click();
    await page.getByRole('link', { name: 'car-1' }).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'car-1' });
    expect(await row.getByText('Up to date').count()).toBe(1);
    // The name filter goes to the API (and into the address).
    await page.getByLabel('Name contains').fill('car-2');
    await expect.poll(() => page.getByRole('link', { name: 'car-1' }).count()).toBe(0);
    expect(new URL(page.url()).searchParams.get('q')).toBe('car-2');
    await page.getByLabel('Name contains').fill('');
    await page.getByRole('link', { name: 'car-1' }).waitFor();
    await shot(page, 'devices');
  });

  it('launches an update after a dry run that says who would not be updated and why', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Updates' }).click();
    await page.getByRole('link', { name: 'New update' }).click();
    await page.getByRole('heading', { level: 1, name: 'New update' }).waitFor();
    await page.getByLabel('Image', { exact: true }).selectOption('firmware-1.0.bin');
    await page.getByLabel('Find devices').fill('car');
    await page.getByRole('checkbox', { name: /car-1/ }).check();
    await page.getByRole('checkbox', { name: /car-2/ }).check();
    await page.getByRole('button', { name: 'Check who would be updated' }).click();
    await page.getByText('Would update 1 device').waitFor();
    const why = page.locator('.not-affected');
    expect(await why.textContent()).toContain('car-2');
    expect(await why.textContent()).toContain('none of its ECUs has a hardware id the image is built for');
    await shot(page, 'new-update');
    // Nothing was assigned by the dry run.
    expect((await ts.api<{ deviceStatus: string }>('GET', '/api/v1/devices/car-1')).body.deviceStatus).toBe('UpToDate');

    await page.getByRole('button', { name: 'Launch update' }).click();
    await page.waitForURL(/\/updates\/[0-9a-f-]{36}$/);
    updateId = new URL(page.url()).pathname.split('/').pop() as string;
    await page.getByText('Assigned to 1 device').waitFor();
    const car1Rows = page.locator('tbody[data-device="car-1"]');
    expect(await car1Rows.getAttribute('data-status')).toBe('assigned');
    expect(await car1Rows.textContent()).toContain('car-1-main');
    expect(await car1Rows.textContent()).not.toContain('car-1-body');
  });

  it('follows the update per device and ECU as the device fetches and installs it', async () => {
    const car1Rows = page.locator('tbody[data-device="car-1"]');
    // The device fetches its Director targets: the update is in flight.
    const targets = await car1.request('GET', '/director/targets.json');
    expect(targets.status).toBe(200);
    await expect.poll(() => car1Rows.getAttribute('data-status'), { timeout: 15_000 }).toBe('in_flight');
    expect(await car1Rows.getByText('In flight').count()).toBeGreaterThan(0);
    expect(await page.getByRole('button', { name: 'Cancel update' }).count()).toBe(1);
    await shot(page, 'update-in-flight');

    // It installs and reports.
    const main = car1.ecus[0];
    if (!main) throw new Error('no ECU');
    main.installed = { filename: 'firmware-1.0.bin', length: image.length, hashes: { sha256 } };
    const report = await car1.sendManifest({
      installationReport: {
        correlationId: `urn:here-ota:mtu:${updateId}`,
        result: { success: true, code: 'OK', description: 'installed' },
        rawReport: 'ok',
        items: [{ ecu: main.serial, result: { success: true, code: 'OK', description: 'installed' } }],
      },
    });
    expect(report.status).toBe(200);
    await expect.poll(() => car1Rows.getAttribute('data-status'), { timeout: 15_000 }).toBe('completed');
    expect(await page.locator('.counts .legend').first().textContent()).toContain('1 completed');
    expect(await page.getByRole('button', { name: 'Cancel update' }).count()).toBe(0);
    await shot(page, 'update-completed');

    // The device page shows the installed image and the report.
    await car1Rows.getByRole('link', { name: 'car-1' }).click();
    await page.getByRole('heading', { level: 1, name: 'car-1' }).waitFor();
    const ecuRow = page.getByRole('row').filter({ hasText: 'car-1-main' }).first();
    expect(await ecuRow.textContent()).toContain('firmware-1.0.bin');
    expect(await page.getByRole('region', { name: 'Installation reports' }).textContent()).toContain('Succeeded');
    expect(await page.locator('.facts').textContent()).toContain('Up to date');
  });

  it('cancels an update that no device has fetched yet', async () => {
    const up = await ts.api(
      'PUT',
      '/api/v1/user_repo/targets/firmware-2.0.bin?name=firmware&version=2.0&hardwareIds=board-a&releaseCounter=2',
      randomBytes(1000),
    );
    expect(up.status).toBe(201);
    const launch = await ts.api<{ id: string }>('POST', '/api/v1/updates', { image: 'firmware@2.0', devices: ['car-1'] });
    expect(launch.status).toBe(201);
    await page.goto(`${ts.adminUrl}/updates/${launch.body.id}`);
    const rows = page.locator('tbody[data-device="car-1"]');
    await rows.waitFor();
    expect(await rows.getAttribute('data-status')).toBe('assigned');
    await page.getByRole('button', { name: 'Cancel update' }).click();
    await page.getByRole('button', { name: 'Yes, cancel update' }).click();
    await page.getByText('Cancelled on 1 device.').waitFor();
    await expect.poll(() => rows.getAttribute('data-status')).toBe('cancelled');
    expect((await ts.api<{ deviceStatus: string }>('GET', '/api/v1/devices/car-1')).body.deviceStatus).toBe('UpToDate');
  });

  it('creates a group and adds and removes a device', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Groups' }).click();
    await page.getByLabel('Name').fill('test-bench');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('heading', { level: 1, name: 'test-bench' }).waitFor();
    await page.getByLabel('Device id').fill('car-2');
    await page.getByRole('button', { name: 'Add to group' }).click();
    await page.getByRole('link', { name: 'car-2' }).waitFor();
    expect((await ts.api<{ devices: string[] }>('GET', '/api/v1/device_groups/test-bench')).body.devices).toEqual(['car-2']);
    // An unknown device is refused with the API's message.
    await page.getByLabel('Device id').fill('no-such-car');
    await page.getByRole('button', { name: 'Add to group' }).click();
    await page.getByText('no device no-such-car').waitFor();
    await shot(page, 'group');
    await page.getByRole('button', { name: 'Remove car-2 from the group' }).click();
    await page.getByText('No devices in this group yet.').waitFor();
    expect((await ts.api<{ devices: string[] }>('GET', '/api/v1/device_groups/test-bench')).body.devices).toEqual([]);
  });

  it('shows fleet status and reported attacks on the overview', async () => {
    const attacks = new Map([['car-2-main', [{ code: 'FREEZE' as const, message: 'timestamp.json expired', repository: 'image', role: 'timestamp' }]]]);
    expect((await car2.sendManifest({ attacks })).status).toBe(200);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).click();
    const attacksRegion = page.getByRole('region', { name: 'Recent attacks reported' });
    await attacksRegion.getByText('FREEZE').waitFor();
    expect(await attacksRegion.textContent()).toContain('timestamp.json expired');
    const upToDate = page.locator('a.tile[data-status="UpToDate"] .n');
    await expect.poll(() => upToDate.textContent()).toBe('2');
    expect(await page.getByRole('region', { name: 'Recent updates' }).textContent()).toContain('firmware@1.0');
    await shot(page, 'overview');
    // A tile leads to the devices of that status.
    await page.locator('a.tile[data-status="UpToDate"]').click();
    await page.waitForURL(/\/devices\?status=UpToDate$/);
    expect(await page.getByLabel('Status').inputValue()).toBe('UpToDate');
  });

  it("revokes a device's certificate from its page; the gateway then refuses it", async () => {
    await page.goto(`${ts.adminUrl}/devices/car-2`);
    await page.getByRole('heading', { level: 1, name: 'car-2' }).waitFor();
    await shot(page, 'device');
    const creds = page.getByRole('region', { name: 'Credentials' });
    await creds.getByRole('button', { name: 'Revoke' }).click();
    await creds.getByRole('button', { name: 'Yes, revoke' }).click();
    await creds.getByText('revoked').waitFor();
    const refused = await car2.request('GET', '/director/targets.json');
    expect(refused.status).toBe(403);
  });

  it('sends a signed-out browser back to sign-in when its token is revoked', async () => {
    const t = await ts.api<{ id: string; token: string }>('POST', '/api/v1/tokens', { name: 'short-lived' });
    expect(t.status).toBe(201);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').fill(t.body.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    expect((await ts.api('DELETE', `/api/v1/tokens/${t.body.id}`)).status).toBe(204);
    // The next request finds out (the Overview's own refresh may come first, and then the link is gone).
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Devices' })
      .click({ timeout: 2_000 })
      .catch(() => undefined);
    await page.getByText('The server refused the token').waitFor();
    expect(await page.evaluate('sessionStorage.getItem("uptide.token")')).toBeNull();
  });
});

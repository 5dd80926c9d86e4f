/**
 * The console's client of the public admin API (the routes documented at
 * /docs): bearer-token requests, `{code, message}` errors, and image uploads
 * with progress. Nothing here knows about server internals.
 */

export type DeviceStatus = 'NotSeen' | 'UpToDate' | 'UpdatePending' | 'UpdateInFlight' | 'Error';
export const DEVICE_STATUSES: readonly DeviceStatus[] = ['NotSeen', 'UpToDate', 'UpdatePending', 'UpdateInFlight', 'Error'];

/** The status of an assignment (one ECU of one device in one update). */
export type AssignmentStatus = 'assigned' | 'in_flight' | 'completed' | 'failed' | 'cancelled';

export interface Page<T> {
  readonly total: number;
  readonly offset: number;
  readonly limit: number;
  readonly values: T[];
}

export interface WhoAmI {
  readonly namespace: string;
  readonly system: boolean;
  readonly tokenId?: string;
}

export interface Device {
  readonly deviceId: string;
  readonly deviceName: string;
  readonly deviceType: string;
  readonly createdAt: string;
  readonly activatedAt: string | null;
  readonly lastSeen: string | null;
  readonly deviceStatus: DeviceStatus;
  readonly primaryEcuSerial: string | null;
}

export interface Ecu {
  readonly ecuSerial: string;
  readonly hardwareId: string;
  readonly primary: boolean;
  readonly keyId: string;
  readonly installedImage: { filepath: string; length: number; hashes: Record<string, string>; reportedAt: string | null } | null;
}

export interface DeviceAssignment {
  readonly updateId: string;
  readonly correlationId: string;
  readonly ecu: string;
  readonly target: string;
  readonly status: AssignmentStatus;
  readonly resultCode: string | null;
  readonly resultDescription: string | null;
  readonly updatedAt: string;
}

export interface Attack {
  readonly device?: string;
  readonly ecu: string | null;
  readonly source: string;
  readonly code: string;
  readonly message: string;
  readonly repository: string | null;
  readonly role: string | null;
  readonly at: string;
}

export interface DeviceDetails extends Device {
  readonly ecus: Ecu[];
  readonly updates: DeviceAssignment[];
  readonly lastInstallation: { correlationId: string; success: boolean; code: string; description: string; receivedAt: string } | null;
  readonly attacks: Attack[];
  readonly groups: Array<{ id: string; name: string }>;
  readonly ecuReplacements: Array<{ before: unknown; after: unknown; at: string }>;
}

export interface InstallationReport {
  readonly correlationId: string;
  readonly success: boolean;
  readonly code: string;
  readonly description: string;
  readonly receivedAt: string;
}

export interface Credential {
  readonly serial: string;
  readonly kind: string;
  readonly fingerprint: string;
  readonly notAfter: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

export interface Image {
  readonly filename: string;
  readonly name: string | null;
  readonly version: string | null;
  readonly hardwareIds: string[];
  readonly length: number;
  readonly hashes: Record<string, string>;
  readonly releaseCounter: number | null;
  readonly targetFormat: string;
  readonly uri: string | null;
  readonly stored: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface UpdateTarget {
  readonly to: { target: string; checksum: { method: string; hash: string }; targetLength: number };
}

export interface UpdateSummary {
  readonly id: string;
  readonly name: string | null;
  readonly targets: Record<string, UpdateTarget>;
  readonly createdAt: string;
}

export interface UpdateEcuStatus {
  readonly ecu: string;
  readonly hardwareId: string;
  readonly target: string;
  readonly status: AssignmentStatus;
  readonly resultCode: string | null;
  readonly resultDescription: string | null;
  readonly updatedAt: string;
}

export interface UpdateStatus {
  readonly id: string;
  readonly name: string | null;
  readonly createdAt: string;
  readonly targets: Record<string, UpdateTarget>;
  readonly counts: Partial<Record<AssignmentStatus, number>>;
  readonly devices: Array<{ device: string; status: AssignmentStatus; ecus: UpdateEcuStatus[] }>;
}

export interface NotAffected {
  readonly device: string;
  readonly reason: string;
}

export interface LaunchResult {
  readonly id: string;
  readonly image: string;
  readonly affected: string[];
  readonly notAffected: NotAffected[];
}

export interface Group {
  readonly id: string;
  readonly name: string;
  readonly size: number;
  readonly createdAt: string;
}

export interface GroupDetails {
  readonly id: string;
  readonly name: string;
  readonly createdAt: string;
  readonly devices: string[];
}

/** An error answer of the API (`{code, message}`), or a failure to reach it (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const TOKEN_KEY = 'uptide.token';

/** The API token lives in sessionStorage: it is gone when the tab closes. */
export const tokenStore = {
  get(): string | null {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

let onUnauthorized: (message: string) => void = () => undefined;

/** Called when the server refuses the stored token (revoked while signed in). */
export function setUnauthorizedHandler(handler: (message: string) => void): void {
  onUnauthorized = handler;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string') code = body.code;
    if (typeof body.message === 'string') message = body.message;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(res.status, code, message);
}

export interface RequestOptions {
  readonly body?: unknown;
  readonly signal?: AbortSignal;
  /** Use this token instead of the stored one (sign-in). */
  readonly token?: string;
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const token = options.token ?? tokenStore.get();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers['authorization'] = `Bearer ${token}`;
  const init: RequestInit = { method, headers, cache: 'no-store' };
  if (options.signal) init.signal = options.signal;
  if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw new ApiError(0, 'unreachable', 'The server cannot be reached. Is uptide-server running?');
  }
  if (!res.ok) {
    const e = await errorOf(res);
    if (res.status === 401 && options.token === undefined) onUnauthorized(e.message);
    throw e;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

/** A query string of the defined values. */
export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

const seg = encodeURIComponent;

export const api = {
  whoami: (token?: string) => request<WhoAmI>('GET', '/api/v1/whoami', token === undefined ? {} : { token }),

  fleetStats: (signal?: AbortSignal) => request<{ total: number; byStatus: Partial<Record<DeviceStatus, number>> }>('GET', '/api/v1/fleet/stats', { signal }),
  devices: (q: { nameContains?: string; groupId?: string; status?: DeviceStatus | ''; offset?: number; limit?: number }, signal?: AbortSignal) =>
    request<Page<Device>>('GET', `/api/v1/devices${query(q)}`, signal ? { signal } : {}),
  device: (id: string) => request<DeviceDetails>('GET', `/api/v1/devices/${seg(id)}`),
  installationHistory: (id: string, limit = 20) => request<InstallationReport[]>('GET', `/api/v1/devices/${seg(id)}/installation_history${query({ limit })}`),
  credentials: (id: string) => request<Credential[]>('GET', `/api/v1/devices/${seg(id)}/credentials`),
  revokeCredential: (id: string, serial: string) => request<void>('DELETE', `/api/v1/devices/${seg(id)}/credentials/${seg(serial)}`),
  cancelDevice: (id: string) => request<string[]>('DELETE', `/api/v1/assignments/${seg(id)}`),
  attacks: (limit = 20) => request<Attack[]>('GET', `/api/v1/attacks${query({ limit })}`),
  hardwareIds: () => request<Page<string>>('GET', '/api/v1/admin/devices/hardware_identifiers'),

  images: (q: { nameContains?: string; offset?: number; limit?: number }) => request<Page<Image>>('GET', `/api/v1/images${query(q)}`),

  updates: (q: { offset?: number; limit?: number }) => request<Page<UpdateSummary>>('GET', `/api/v1/updates${query(q)}`),
  update: (id: string) => request<UpdateStatus>('GET', `/api/v1/updates/${seg(id)}`),
  launch: (body: { image: string; devices?: string[]; group?: string; name?: string; dryRun?: boolean }) =>
    request<LaunchResult>('POST', '/api/v1/updates', { body }),
  cancelUpdate: (id: string) => request<{ cancelled: string[]; inFlight: string[] }>('POST', `/api/v1/updates/${seg(id)}/cancel`),

  groups: () => request<Page<Group>>('GET', '/api/v1/device_groups'),
  group: (id: string) => request<GroupDetails>('GET', `/api/v1/device_groups/${seg(id)}`),
  createGroup: (name: string) => request<{ id: string; name: string }>('POST', '/api/v1/device_groups', { body: { name } }),
  deleteGroup: (id: string) => request<void>('DELETE', `/api/v1/device_groups/${seg(id)}`),
  addToGroup: (group: string, device: string) => request<void>('POST', `/api/v1/device_groups/${seg(group)}/devices/${seg(device)}`),
  removeFromGroup: (group: string, device: string) => request<void>('DELETE', `/api/v1/device_groups/${seg(group)}/devices/${seg(device)}`),
};

export interface UploadParams {
  readonly filename: string;
  readonly name: string;
  readonly version: string;
  readonly hardwareIds: readonly string[];
  readonly releaseCounter?: number;
}

/**
 * Uploads an image as a raw body. XMLHttpRequest, not fetch: only it reports
 * upload progress in browsers.
 */
export function uploadImage(file: Blob, p: UploadParams, onProgress: (sent: number, total: number) => void, signal?: AbortSignal): Promise<Image> {
  const path = `/api/v1/user_repo/targets/${p.filename.split('/').map(seg).join('/')}${query({
    name: p.name,
    version: p.version,
    hardwareIds: p.hardwareIds.join(','),
    releaseCounter: p.releaseCounter,
  })}`;
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    const token = tokenStore.get();
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.responseType = 'text';
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body: { code?: unknown; message?: unknown } = {};
      try {
        body = JSON.parse(xhr.responseText) as typeof body;
      } catch {
        // keep {}
      }
      if (xhr.status === 201) {
        onProgress(file.size, file.size);
        resolve(body as unknown as Image);
        return;
      }
      const e = new ApiError(
        xhr.status,
        typeof body.code === 'string' ? body.code : `http_${xhr.status}`,
        typeof body.message === 'string' ? body.message : `upload failed (HTTP ${xhr.status})`,
      );
      if (xhr.status === 401) onUnauthorized(e.message);
      reject(e);
    };
    xhr.onerror = () => reject(new ApiError(0, 'unreachable', 'The upload was interrupted: the server cannot be reached.'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'The upload was cancelled.'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/**
 * The few admin API calls the simulator makes (docs/api.md): provisioning
 * information, device certificates, the fleet's credentials.zip, and static
 * groups. Failures are SimError with the server's error code, so that the
 * simulator can say what to do (wrong token, server down).
 */

/** A simulator failure outside a device's own update cycle (setup, admin API). */
export class SimError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SimError';
  }
}

export interface ProvisioningInfo {
  readonly namespace: string;
  readonly gatewayUrl: string;
  readonly serverCa: string;
  readonly deviceCa: string;
  readonly directorRoot: unknown;
  readonly imageRoot: unknown;
}

export interface IssuedCredentials {
  readonly certificate: string;
  readonly serverCa: string;
}

const TIMEOUT_MS = 60_000;

export class AdminClient {
  constructor(
    readonly server: string,
    private readonly token: string,
  ) {}

  private async call(method: string, path: string, body?: unknown, accept: readonly number[] = []): Promise<{ status: number; bytes: Buffer }> {
    let res: Response;
    try {
      res = await fetch(this.server + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new SimError('SERVER_UNREACHABLE', `cannot reach the admin API at ${this.server}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, {
        cause: err,
      });
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if ((res.status >= 200 && res.status < 300) || accept.includes(res.status)) return { status: res.status, bytes };
    let code = `HTTP_${res.status}`;
    let message = bytes.subarray(0, 300).toString('utf8');
    try {
      const e = JSON.parse(bytes.toString('utf8')) as { code?: unknown; message?: unknown };
      if (typeof e.code === 'string') code = e.code;
      if (typeof e.message === 'string') message = e.message;
    } catch {
      // Not a JSON error body.
    }
    if (res.status === 401 || res.status === 403) {
      throw new SimError('UNAUTHORIZED', `${method} ${path}: HTTP ${res.status} ${message} (check --token or UPTIDE_TOKEN)`);
    }
    throw new SimError(code, `${method} ${path}: HTTP ${res.status} ${message}`);
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return JSON.parse((await this.call(method, path, body)).bytes.toString('utf8')) as T;
  }

  /** Gateway URL, CA certificates and the current roots of the token's namespace. */
  async provisioningInfo(): Promise<ProvisioningInfo> {
    const info = await this.json<ProvisioningInfo>('GET', '/api/v1/provisioning/info');
    if (typeof info.gatewayUrl !== 'string' || typeof info.serverCa !== 'string') {
      throw new SimError('BAD_RESPONSE', `${this.server}/api/v1/provisioning/info lacks gatewayUrl or serverCa: is this an Uptide server?`);
    }
    return info;
  }

  /** Creates a device (plain-HTTP gateways know devices only from the registry); one that exists is fine. */
  async createDevice(deviceId: string): Promise<void> {
    await this.call('POST', '/api/v1/devices', { deviceId }, [409]);
  }

  /** A device certificate for a public key the device generated (the device is created if needed). */
  async issueCertificate(deviceId: string, publicKeyPem: string): Promise<IssuedCredentials> {
    return this.json<IssuedCredentials>('POST', `/api/v1/devices/${encodeURIComponent(deviceId)}/credentials`, { publicKey: publicKeyPem });
  }

  /** A new fleet credentials.zip (a bootstrap certificate for shared-credential provisioning). */
  async credentialsZip(): Promise<Buffer> {
    return (await this.call('POST', '/api/v1/provisioning/credentials')).bytes;
  }

  /** Creates the static group unless it exists. */
  async ensureGroup(name: string): Promise<void> {
    await this.call('POST', '/api/v1/device_groups', { name }, [409]);
  }

  async addToGroup(group: string, deviceId: string): Promise<void> {
    await this.call('POST', `/api/v1/device_groups/${encodeURIComponent(group)}/devices/${encodeURIComponent(deviceId)}`);
  }
}

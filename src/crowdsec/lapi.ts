/**
 * CrowdSec Local API over HTTP (edge), with Node's own fetch. Every request of a run shares
 * one time budget (a slow or hung LAPI must not hold up the local blocks): a request that
 * would outlive it is aborted. Failures are LapiError: `auth` (credentials refused),
 * `unreachable` (no answer in time, refused, reset) or `server` (an answer that is not one).
 */

export const LAPI_BUDGET_MS = 5000;

export type LapiFault = 'auth' | 'unreachable' | 'server';

export class LapiError extends Error {
  constructor(
    readonly fault: LapiFault,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LapiError';
  }
}

/** Time for requests, spent only while one is under way (the scan and the reloads between are not counted). */
export class Budget {
  private spent = 0;
  constructor(
    private readonly ms: number,
    private readonly clock: () => number = Date.now,
  ) {}
  left(): number {
    return Math.max(0, this.ms - this.spent);
  }
  async spend<T>(work: (ms: number) => Promise<T>): Promise<T> {
    const start = this.clock();
    try {
      return await work(this.left());
    } finally {
      this.spent += this.clock() - start;
    }
  }
}

export interface Token {
  token: string;
  /** ms */
  expire: number;
}

type Fetch = typeof fetch;

export class Lapi {
  private readonly base: string;

  constructor(
    url: string,
    private readonly budget: Budget,
    private readonly userAgent: string,
    private readonly fetchImpl: Fetch = fetch,
  ) {
    this.base = url.replace(/\/+$/, '');
  }

  /** POST /v1/watchers/login: a machine's JWT. */
  async login(machine: string, password: string): Promise<Token> {
    const body = (await this.request('POST', '/v1/watchers/login', { body: { machine_id: machine, password } })) as { token?: unknown; expire?: unknown };
    if (typeof body?.token !== 'string') throw new LapiError('server', 'the login answer holds no token');
    const expire = typeof body.expire === 'string' ? Date.parse(body.expire) : NaN;
    return { token: body.token, expire: Number.isNaN(expire) ? Date.now() + 30 * 60e3 : expire };
  }

  /** POST /v1/alerts: the ids LAPI gave the alerts. */
  async postAlerts(token: string, alerts: readonly object[]): Promise<string[]> {
    const ids = await this.request('POST', '/v1/alerts', { body: alerts, token });
    if (!Array.isArray(ids)) throw new LapiError('server', 'the alerts answer is not a list of ids');
    return ids.map(String);
  }

  /** GET /v1/alerts with filters (machine auth). */
  async findAlerts(token: string, filters: Record<string, string>): Promise<Array<{ message?: unknown }>> {
    const found = await this.request('GET', `/v1/alerts?${new URLSearchParams(filters)}`, { token });
    return Array.isArray(found) ? found : [];
  }

  /** GET /v1/decisions/stream (bouncer auth). */
  async stream(key: string, startup: boolean): Promise<unknown> {
    return this.request('GET', `/v1/decisions/stream${startup ? '?startup=true' : ''}`, { apiKey: key });
  }

  private async request(method: string, path: string, options: { body?: unknown; token?: string; apiKey?: string }): Promise<unknown> {
    const left = this.budget.left();
    const what = `${method} ${this.base}${path.replace(/\?.*$/, '')}`;
    if (left <= 0) throw new LapiError('unreachable', `${what}: no time left (${LAPI_BUDGET_MS / 1000} s for CrowdSec per run)`);
    const headers: Record<string, string> = { 'User-Agent': this.userAgent, Accept: 'application/json' };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
    if (options.apiKey !== undefined) headers['X-Api-Key'] = options.apiKey;
    let response: Response;
    let text: string;
    try {
      [response, text] = await this.budget.spend(async (ms) => {
        const answer = await this.fetchImpl(`${this.base}${path}`, {
          method,
          headers,
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
          signal: AbortSignal.timeout(ms),
          redirect: 'error',
        });
        return [answer, await answer.text()] as const;
      });
    } catch (error) {
      const e = error as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${Math.ceil(left / 100) / 10} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new LapiError('unreachable', `${what}: ${why}`, { cause: error });
    }
    if (response.status === 401 || response.status === 403) throw new LapiError('auth', `${what}: ${response.status} ${messageOf(text)}`);
    if (!response.ok) throw new LapiError('server', `${what}: ${response.status} ${messageOf(text)}`);
    try {
      return text === '' ? null : JSON.parse(text);
    } catch (error) {
      throw new LapiError('server', `${what}: the answer is not JSON`, { cause: error });
    }
  }
}

function messageOf(text: string): string {
  try {
    const m = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof m === 'string') return m.slice(0, 200);
  } catch {
    // not JSON: the start of the text
  }
  return text.replace(/\s+/g, ' ').slice(0, 200);
}

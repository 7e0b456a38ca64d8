/** Every setting with its type. Validation and defaults live in core (`settings/definitions.ts`). */
export interface SettingsValues {
  /** Port of the HTTP API and dashboard. @default 8080 */
  api_port: number
  /** Where Ollama listens. Loopback by default: sharedLLM is the only door to it. @default 'http://127.0.0.1:11434' */
  ollama_host: string
  /** Path of the ollama binary; null means search PATH. Command line or config file only. @default null */
  ollama_bin: string | null
  /** Start `ollama serve` when none answers. @default true */
  auto_start_ollama: boolean
  /** Advertise and browse `_sharedllm._tcp` on the LAN. @default true */
  mdns_enabled: boolean
  /** Approve devices discovered over mDNS with `default_role` instead of leaving them pending. @default false */
  trust_local_network: boolean
  /** File a join request to every sharedLLM host discovered on the LAN without asking the owner. @default false */
  auto_join_discovered_hosts: boolean
  /** Role given by trust_local_network and suggested at approval; never the admin role. @default 'role-guest' */
  default_role: string
  /** Memory kept back for the host itself, in MiB. @default 2048 */
  host_reserve_mb: number
  /** Let the sum of allocations exceed capacity. @default false */
  allow_oversubscription: boolean
  /** Context length assumed for fit estimates when a request names none. @default 4096 */
  default_context_tokens: number
  /** Extra memory provider packages to load by name. Command line or config file only. @default [] */
  extra_providers: string[]
  /** Memory probe cadence in ms. @default 3000 */
  probe_interval_ms: number
  /** Extra host names accepted in the Host header (besides localhost and the machine's names and addresses). @default [] */
  allowed_hosts: string[]
  /** Port of the HTTPS listener; 0 turns HTTPS off. @default 8443 */
  https_port: number
  /** Days per-request usage rows are kept. @default 30 */
  usage_raw_retention_days: number
  /** Days hourly usage rollups are kept; monthly budgets and charts read them. @default 400 */
  usage_rollup_retention_days: number
  /**
   * Seconds the fair-share queue keeps preferring requests for a loaded model before a waiting request for
   * another model may make Ollama switch. @default 20
   */
  model_switch_wait_s: number
  /**
   * Requests an attached Ollama runs at once per loaded model: its `OLLAMA_NUM_PARALLEL` (Ollama's default
   * is 1, envconfig/config.go). An Ollama sharedLLM starts uses its own value. @default 1
   */
  ollama_num_parallel: number
  /**
   * Pooling with paired hosts: `off` (requests never leave this host), `local_first` (a peer serves a model
   * that is not installed here, or that cannot load here now while it fits there), `balanced` (the best
   * host of the pool, this one included: loaded there, fits, queue, latency). @default 'local_first'
   */
  routing: 'off' | 'local_first' | 'balanced'
  /**
   * Pooling, under `local_first` and `balanced`: a request whose model would wait in this host's fair-share
   * queue longer than on a peer by more than this many seconds goes to that peer (the expected waits: the
   * queue ahead of it times the model's service time). It also bounds how much longer the host that served
   * a device and model last may make it wait before its conversation moves. @default 10
   */
  routing_wait_threshold_s: number
  /**
   * Let roles with `allow_cloud` run Ollama's cloud models (`…:cloud`, `…-cloud`, a model with a remote
   * host): their prompts leave the LAN and spend the owner's ollama.com account. An Ollama sharedLLM
   * starts gets OLLAMA_NO_CLOUD=1 while this is off. @default false
   */
  cloud_models_enabled: boolean
  /**
   * The KV cache type of an attached Ollama (its OLLAMA_KV_CACHE_TYPE: `f16`, `q8_0`, `q4_0`); fit
   * estimates use it. An Ollama sharedLLM starts is given this value. @default 'f16'
   */
  ollama_kv_cache_type: 'f16' | 'q8_0' | 'q4_0'
  /** How long a started `ollama serve` may take to answer (GPU discovery can be slow), in ms. @default 120000 */
  ollama_start_timeout_ms: number
}

export type SettingKey = keyof SettingsValues

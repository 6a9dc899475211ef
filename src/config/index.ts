/** Public surface of the configuration module. */
export { registerSettings, allSettings, settingByPath, settingByEnv, isSecret } from './registry';
export type { SettingSpec, SettingType, DefaultContext } from './registry';
export { loadConfig, Config, ConfigError, mask } from './load';
export type { LoadOptions, Source } from './load';
export { maskUrlUserinfo, maskUrlsDeep } from './mask';

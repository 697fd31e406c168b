// The state database's schema: the steps that migrate a database of version N to N + 1.
#pragma once

#include <string>

namespace ralph {

/// The schema version this ralph writes (SQLite's user_version).
constexpr int kSchemaVersion = 6;

/// The SQL that migrates a database of `version` to `version + 1`. Never edit a released step;
/// append one.
std::string SchemaStep(int version);

}  // namespace ralph

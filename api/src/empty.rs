//! Docker's `{}`: the value of each key in the port and volume sets of
//! container and image configs.

use serde::{Deserialize, Serialize};

/// Docker writes `{}` as the value of port and volume sets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmptyObject {}

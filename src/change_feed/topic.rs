//! The change log's topics, and where an indexed answer came from.

/// The topics of the change log (`change_log.name`): what a trigger records a write under, and
/// what an in-process index or read cache is kept by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Who a bearer token stands for (`api_tokens`, `users`, a user's region level; key 0).
    Auth,
    /// The region tree (`regions`; key 0).
    Regions,
    /// The supply catalogue (`supply_items`; key 0).
    Catalogue,
    /// Depots and their stock (key: depot id; `crate::supplies::supply_index`).
    Supplies,
    /// Approved teams, their members, skills and insurance (key: team id;
    /// `crate::forces::team_index`).
    Forces,
}

impl Topic {
    /// How many topics there are.
    pub const COUNT: usize = 5;
    /// Every topic, in the order of [`Topic::index`].
    pub const ALL: [Topic; Topic::COUNT] =
        [Topic::Auth, Topic::Regions, Topic::Catalogue, Topic::Supplies, Topic::Forces];

    /// The topic's name in `change_log`.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Auth => "auth",
            Topic::Regions => "regions",
            Topic::Catalogue => "catalogue",
            Topic::Supplies => "supplies",
            Topic::Forces => "forces",
        }
    }

    /// The topic's position in [`Topic::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where an answer came from (for the `X-Nearest-Source` header and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The in-process index (current, after re-reading any unit changed since it was built).
    Index,
    /// The database (the index is off, not built yet, or too far behind).
    Database,
}

impl Source {
    /// `index` or `database`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Index => "index",
            Source::Database => "database",
        }
    }
}

//! Networks: their names, bridges, subnets, persisted as JSON.

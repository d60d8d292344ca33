//! Programs: stored as the contract states them, used as rules, and kept per tenant in memory for
//! a short while (each sale needs them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prost::Message;
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::clock::Clock;
use quanyu_runtime::db::{begin_write, with_retries};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::domain::program::{ProgramRules, Programs};
use crate::error::PointsError;
use crate::store;

/// How long a tenant's programs are used as read: a change made through another replica takes
/// that long to apply here; through this one, at once.
const CACHE_TTL: Duration = Duration::from_secs(2);

pub struct ProgramCatalog {
    db: DatabaseConnection,
    clock: Clock,
    by_tenant: Mutex<HashMap<String, (Instant, Arc<Programs>)>>,
}

impl ProgramCatalog {
    pub fn new(db: DatabaseConnection, clock: Clock) -> Self {
        Self {
            db,
            clock,
            by_tenant: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self) -> MutexGuard<'_, HashMap<String, (Instant, Arc<Programs>)>> {
        // A panic while holding the lock cannot leave the cache inconsistent: entries are whole.
        self.by_tenant.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every program of the tenant, by id.
    pub async fn of_tenant(&self, tenant_id: &str) -> Result<Arc<Programs>, PointsError> {
        let cached = self.cached().get(tenant_id).cloned();
        if let Some((read_at, programs)) = cached
            && read_at.elapsed() < CACHE_TTL
        {
            return Ok(programs);
        }
        let programs = Arc::new(load(&self.db, tenant_id).await?);
        self.cached()
            .insert(tenant_id.to_owned(), (Instant::now(), programs.clone()));
        Ok(programs)
    }

    /// The program an account reference names: the given id, else the tenant-wide program.
    pub async fn program_for(&self, tenant_id: &str, program_id: &str) -> Result<(ProgramRules, u32), PointsError> {
        let programs = self.of_tenant(tenant_id).await?;
        let id = if program_id.is_empty() {
            programs
                .iter()
                .find(|(_, (rules, _))| rules.brand_id.is_empty())
                .map(|(id, _)| id.clone())
                .ok_or_else(|| PointsError::ProgramNotFound("(tenant-wide)".into()))?
        } else {
            program_id.to_owned()
        };
        programs.get(&id).cloned().ok_or(PointsError::ProgramNotFound(id))
    }

    /// Creates or replaces a program (validated by the caller); returns it with its new rules
    /// version. A brand earns in one program only.
    pub async fn upsert(&self, tenant_id: &str, program: pb::Program) -> Result<pb::Program, PointsError> {
        let saved = with_retries(|| async {
            let txn = begin_write(&self.db).await?;
            let version = store::programs::lock_version(&txn, tenant_id, &program.program_id)
                .await?
                .map_or(1, |version| version + 1);
            let clash =
                store::programs::earning_for_brand(&txn, tenant_id, &program.brand_id, &program.program_id).await?;
            if let Some(other) = clash {
                return Err(PointsError::BrandTaken {
                    brand_id: program.brand_id.clone(),
                    program_id: other,
                });
            }
            let saved = pb::Program {
                rules_version: version,
                ..program.clone()
            };
            let definition = saved.encode_to_vec();
            let (id, brand) = (&program.program_id, &program.brand_id);
            store::programs::save(&txn, tenant_id, id, brand, version, definition, self.clock.now()).await?;
            txn.commit().await?;
            Ok(saved)
        })
        .await?;
        self.cached().remove(tenant_id);
        Ok(saved)
    }

    /// A program as it was last given.
    pub async fn get(&self, tenant_id: &str, program_id: &str) -> Result<pb::Program, PointsError> {
        let row = store::programs::all(&self.db, tenant_id)
            .await?
            .into_iter()
            .find(|row| row.id == program_id)
            .ok_or_else(|| PointsError::ProgramNotFound(program_id.to_owned()))?;
        decode(&row.id, &row.definition)
    }
}

fn decode(program_id: &str, definition: &[u8]) -> Result<pb::Program, PointsError> {
    pb::Program::decode(definition)
        .map_err(|error| PointsError::Database(sea_orm::DbErr::Custom(format!("program {program_id}: {error}"))))
}

/// Every program of a tenant with its rules, read now.
pub async fn load<C: ConnectionTrait>(db: &C, tenant_id: &str) -> Result<Programs, PointsError> {
    let mut rules = HashMap::new();
    for row in store::programs::all(db, tenant_id).await? {
        let version = row.rules_version.unsigned_abs();
        let program = ProgramRules::from_pb(&decode(&row.id, &row.definition)?, version)?;
        rules.insert(row.id, (program, version));
    }
    Ok(rules)
}

//! Audiences, as analytics reads them: campaign keeps no member facts of its own, so it asks
//! analytics who an audience selects — all of it, in batches, for a drop; one member at a time
//! for a reward decided as something happens.

use std::pin::Pin;

use quanyu_proto::analytics::v1 as analytics_pb;
use quanyu_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use quanyu_proto::analytics::v1::audience_selector::Audience as Selected;
use quanyu_runtime::auth::BearerKey;
use quanyu_runtime::error::FieldViolation;
use tokio_stream::{Stream, StreamExt as _};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::domain::campaign::Audience;
use crate::error::CampaignError;

/// Batches of members, in member id order.
pub type Batches = Pin<Box<dyn Stream<Item = Result<Vec<String>, CampaignError>> + Send>>;

/// Who audiences select.
#[async_trait::async_trait]
pub trait AudienceSource: Send + Sync {
    /// How many members `audience` selects; INVALID_ARGUMENT naming `campaign.audience…` when
    /// analytics refuses it.
    async fn count(&self, tenant_id: &str, audience: &Audience) -> Result<i64, CampaignError>;
    /// The members `audience` selects after `after`, in batches of `batch`.
    async fn list(
        &self,
        tenant_id: &str,
        audience: &Audience,
        (after, batch): (&str, i32),
    ) -> Result<Batches, CampaignError>;
    /// Those of `member_ids` (at most 1,000) that `audience` selects. An audience analytics
    /// refuses now (a saved audience deleted since) selects nobody.
    async fn matching(
        &self,
        tenant_id: &str,
        audience: &Audience,
        member_ids: &[String],
    ) -> Result<Vec<String>, CampaignError>;
}

/// Analytics, called with the service key for each tenant.
pub struct Analytics {
    pub channel: Channel,
    pub service_key: String,
}

type Client = AnalyticsServiceClient<InterceptedService<Channel, BearerKey>>;

impl Analytics {
    fn client(&self, tenant_id: &str) -> Result<Client, CampaignError> {
        let bearer = BearerKey::new(&self.service_key)
            .and_then(|bearer| bearer.for_tenant(tenant_id))
            .map_err(|error| CampaignError::Analytics(tonic::Status::unauthenticated(error.to_string())))?;
        Ok(AnalyticsServiceClient::with_interceptor(self.channel.clone(), bearer))
    }
}

fn selector(audience: &Audience) -> Option<analytics_pb::AudienceSelector> {
    let selected = match audience {
        Audience::Rule(rule) => Selected::Rule(rule.clone()),
        Audience::Saved(name) => Selected::Name(name.clone()),
    };
    Some(analytics_pb::AudienceSelector {
        audience: Some(selected),
    })
}

/// Whether analytics refused the audience itself (a rule that does not parse, a name saved as
/// nothing), rather than failing to answer.
fn refuses_audience(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::InvalidArgument | Code::NotFound)
}

#[async_trait::async_trait]
impl AudienceSource for Analytics {
    async fn count(&self, tenant_id: &str, audience: &Audience) -> Result<i64, CampaignError> {
        let request = analytics_pb::CountAudienceRequest {
            audience: selector(audience),
        };
        match self.client(tenant_id)?.count_audience(request).await {
            Ok(counted) => Ok(counted.into_inner().members),
            Err(status) if refuses_audience(&status) => {
                let field = match audience {
                    Audience::Rule(_) => "campaign.audience.rule",
                    Audience::Saved(_) => "campaign.audience.name",
                };
                Err(FieldViolation::new(field, status.message()).into())
            }
            Err(status) => Err(CampaignError::Analytics(status)),
        }
    }

    async fn list(
        &self,
        tenant_id: &str,
        audience: &Audience,
        (after, batch): (&str, i32),
    ) -> Result<Batches, CampaignError> {
        let request = analytics_pb::ListAudienceMembersRequest {
            audience: selector(audience),
            after_member_id: after.to_owned(),
            batch_size: batch,
        };
        let batches = self
            .client(tenant_id)?
            .list_audience_members(request)
            .await
            .map_err(CampaignError::Analytics)?
            .into_inner();
        Ok(Box::pin(batches.map(|batch| {
            batch.map(|batch| batch.member_ids).map_err(CampaignError::Analytics)
        })))
    }

    async fn matching(
        &self,
        tenant_id: &str,
        audience: &Audience,
        member_ids: &[String],
    ) -> Result<Vec<String>, CampaignError> {
        let request = analytics_pb::MatchAudienceRequest {
            audience: selector(audience),
            member_ids: member_ids.to_vec(),
        };
        match self.client(tenant_id)?.match_audience(request).await {
            Ok(matched) => Ok(matched.into_inner().member_ids),
            Err(status) if refuses_audience(&status) => {
                tracing::warn!(tenant_id, %status, "an audience analytics refuses selects nobody");
                Ok(Vec::new())
            }
            Err(status) => Err(CampaignError::Analytics(status)),
        }
    }
}

//! How loyalty-points reaches member-identity: resolving a batch's buyers in one call, and
//! enrolling those the program enrols.

use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::identity::v1::member_identity_service_client::MemberIdentityServiceClient;
use quanyu_runtime::auth::BearerKey;
use tonic::transport::Channel as GrpcChannel;

use crate::error::PointsError;

/// How loyalty-points reaches member-identity.
#[derive(Clone)]
pub struct IdentityClient {
    channel: GrpcChannel,
    service_key: String,
}

impl IdentityClient {
    pub fn new(channel: GrpcChannel, service_key: String) -> Self {
        Self { channel, service_key }
    }

    fn client(
        &self,
        tenant_id: &str,
    ) -> Result<
        MemberIdentityServiceClient<tonic::service::interceptor::InterceptedService<GrpcChannel, BearerKey>>,
        PointsError,
    > {
        let bearer = BearerKey::new(&self.service_key)
            .and_then(|bearer| bearer.for_tenant(tenant_id))
            .map_err(|error| PointsError::Identity(format!("invalid service key: {error}")))?;
        Ok(MemberIdentityServiceClient::with_interceptor(
            self.channel.clone(),
            bearer,
        ))
    }

    /// Finds (or, where the program says so, enrols) the members behind the sales' identities.
    pub async fn resolve_buyers(
        &self,
        tenant_id: &str,
        identities: Vec<identity_pb::Identity>,
        enroll: &[bool],
    ) -> Result<Vec<Result<Option<String>, String>>, PointsError> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client(tenant_id)?;
        let resolutions = client
            .resolve_identities(identity_pb::ResolveIdentitiesRequest {
                identities: identities.clone(),
            })
            .await?
            .into_inner()
            .resolutions;
        let mut buyers = Vec::with_capacity(identities.len());
        for ((resolution, identity), enroll) in resolutions.into_iter().zip(identities).zip(enroll) {
            let outcome = identity_pb::ResolveOutcome::try_from(resolution.outcome);
            buyers.push(match outcome {
                Ok(identity_pb::ResolveOutcome::Found) => Ok(Some(resolution.member_id)),
                Ok(identity_pb::ResolveOutcome::Invalid) => Err(resolution.error),
                _ if *enroll => {
                    let enrolled = client
                        .enroll_member(identity_pb::EnrollMemberRequest {
                            identities: vec![identity],
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    Ok(enrolled.member.map(|member| member.member_id))
                }
                _ => Ok(None),
            });
        }
        Ok(buyers)
    }
}

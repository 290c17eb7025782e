//! The configurable weights every score is computed from, with the
//! reference's defaults (§10.6), and their validation.

use super::*;

/// Every weight, multiplier and threshold of the analysis (reference §10.6).
/// Partial configurations keep the defaults for the keys they omit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DependencyGraphWeights {
    /// Weights of downstream impact and of path criticality.
    pub impact_multipliers: ImpactMultipliers,
    /// Multipliers by the state of a bottleneck step.
    pub severity_multipliers: SeverityMultipliers,
    /// Fixed penalties added to a bottleneck's impact.
    pub penalty_constants: PenaltyConstants,
    /// Impact score thresholds of the severities.
    pub severity_thresholds: SeverityThresholds,
    /// Duration estimates of a path, in seconds.
    pub duration_estimates: DurationEstimates,
}

/// Weights of downstream impact and of path criticality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ImpactMultipliers {
    /// Per downstream step (error impact, bottleneck base). Default 5.
    pub downstream_weight: f64,
    /// Per blocked downstream step (error impact, bottleneck base). Default 15.
    pub blocked_weight: f64,
    /// Per step of a path (criticality). Default 10.
    pub path_length_weight: f64,
    /// Subtracted per completed step of a path. Default 15.
    pub completed_penalty: f64,
    /// Per blocked step of a path. Default 25.
    pub blocked_penalty: f64,
    /// Per failed step of a path. Default 30.
    pub error_penalty: f64,
    /// Per retrying step of a path. Default 10.
    pub retry_penalty: f64,
}

impl Default for ImpactMultipliers {
    fn default() -> Self {
        ImpactMultipliers {
            downstream_weight: 5.0,
            blocked_weight: 15.0,
            path_length_weight: 10.0,
            completed_penalty: 15.0,
            blocked_penalty: 25.0,
            error_penalty: 30.0,
            retry_penalty: 10.0,
        }
    }
}

/// Multipliers by the state of a bottleneck step ("state severity").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SeverityMultipliers {
    /// A step in `error` or `cancelled`. Default 2.0.
    pub error_state: f64,
    /// Added when the step has no attempts left. Default 0.5.
    pub exhausted_retry_bonus: f64,
    /// A pending step whose dependencies are not satisfied. Default 1.2.
    pub dependency_issue: f64,
}

impl Default for SeverityMultipliers {
    fn default() -> Self {
        SeverityMultipliers {
            error_state: 2.0,
            exhausted_retry_bonus: 0.5,
            dependency_issue: 1.2,
        }
    }
}

/// Fixed penalties added to a bottleneck's impact ("penalty calculation").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PenaltyConstants {
    /// Per failed attempt. Default 3.
    pub retry_instability: f64,
    /// A failed step that is not retryable. Default 10.
    pub non_retryable: f64,
    /// A failed step with no attempts left. Default 20.
    pub exhausted_retry: f64,
}

impl Default for PenaltyConstants {
    fn default() -> Self {
        PenaltyConstants {
            retry_instability: 3.0,
            non_retryable: 10.0,
            exhausted_retry: 20.0,
        }
    }
}

/// Impact score thresholds: at or above `critical` is critical, and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SeverityThresholds {
    /// Default 100.
    pub critical: f64,
    /// Default 50.
    pub high: f64,
    /// Default 20.
    pub medium: f64,
}

impl Default for SeverityThresholds {
    fn default() -> Self {
        SeverityThresholds {
            critical: 100.0,
            high: 50.0,
            medium: 20.0,
        }
    }
}

/// Duration estimates of a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DurationEstimates {
    /// Per step. Default 30.
    pub base_step_seconds: f64,
    /// Per failed step. Default 60.
    pub error_penalty_seconds: f64,
    /// Per failed attempt. Default 30.
    pub retry_penalty_seconds: f64,
}

impl Default for DurationEstimates {
    fn default() -> Self {
        DurationEstimates {
            base_step_seconds: 30.0,
            error_penalty_seconds: 60.0,
            retry_penalty_seconds: 30.0,
        }
    }
}

impl DependencyGraphWeights {
    /// Every problem with the settings, each naming its key (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let m = &self.impact_multipliers;
        let s = &self.severity_multipliers;
        let p = &self.penalty_constants;
        let t = &self.severity_thresholds;
        let d = &self.duration_estimates;
        let values = [
            ("impact_multipliers.downstream_weight", m.downstream_weight),
            ("impact_multipliers.blocked_weight", m.blocked_weight),
            (
                "impact_multipliers.path_length_weight",
                m.path_length_weight,
            ),
            ("impact_multipliers.completed_penalty", m.completed_penalty),
            ("impact_multipliers.blocked_penalty", m.blocked_penalty),
            ("impact_multipliers.error_penalty", m.error_penalty),
            ("impact_multipliers.retry_penalty", m.retry_penalty),
            ("severity_multipliers.error_state", s.error_state),
            (
                "severity_multipliers.exhausted_retry_bonus",
                s.exhausted_retry_bonus,
            ),
            ("severity_multipliers.dependency_issue", s.dependency_issue),
            ("penalty_constants.retry_instability", p.retry_instability),
            ("penalty_constants.non_retryable", p.non_retryable),
            ("penalty_constants.exhausted_retry", p.exhausted_retry),
            ("severity_thresholds.critical", t.critical),
            ("severity_thresholds.high", t.high),
            ("severity_thresholds.medium", t.medium),
            ("duration_estimates.base_step_seconds", d.base_step_seconds),
            (
                "duration_estimates.error_penalty_seconds",
                d.error_penalty_seconds,
            ),
            (
                "duration_estimates.retry_penalty_seconds",
                d.retry_penalty_seconds,
            ),
        ];
        let mut out: Vec<String> = values
            .iter()
            .filter(|(_, v)| !(v.is_finite() && *v >= 0.0))
            .map(|(k, v)| format!("dependency_graph.{k}: must be a finite number >= 0 (got {v})"))
            .collect();
        if !(t.critical > t.high && t.high > t.medium) {
            out.push(format!(
                "dependency_graph.severity_thresholds: must satisfy critical > high > medium (got {} / {} / {})",
                t.critical, t.high, t.medium
            ));
        }
        out
    }

    /// The severity of an impact score.
    pub fn severity(&self, score: f64) -> Severity {
        let t = &self.severity_thresholds;
        if score >= t.critical {
            Severity::Critical
        } else if score >= t.high {
            Severity::High
        } else if score >= t.medium {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

"""The MET task's methods (:class:`~coffea_mlreco.core.methods.MethodSet`): what ``met.reconstruct`` runs, and
CMS's own MET columns, which the processor and the report compare with them where the file carries them
(their collection names by NanoAOD version: :data:`coffea_mlreco.core.nanoaod.CMS_MET`)."""

from __future__ import annotations

from coffea_mlreco.core.methods import Method, MethodSet

__all__ = ["CMS_COUNTERPARTS", "MET_METHODS"]

MET_METHODS = MethodSet(
    task="MET",
    methods=(
        Method("pf", "PF MET (from PF candidates)", short="PF MET"),
        Method("puppi", "PUPPI MET"),
        Method("deepmet", "DeepMET", network="deepmet"),
        Method("perceiver", "Perceiver MET", network="perceiver", short="Perceiver"),
    ),
    references=(
        Method("file_met", "MET stored in the file (CMS: PF MET, type-1)", short="MET in file"),
        Method("cms_raw_pf", "CMS raw PF MET (RawMET / RawPFMET)", short="CMS raw PF"),
        Method("cms_puppi", "CMS PUPPI MET, type-1 (PuppiMET)", short="CMS PUPPI"),
        Method("cms_raw_puppi", "CMS raw PUPPI MET (RawPuppiMET)", short="CMS raw PUPPI"),
        Method("cms_deepmet_resolution", "CMS DeepMET, resolution tune", short="CMS DeepMET res."),
        Method("cms_deepmet_response", "CMS DeepMET, response tune", short="CMS DeepMET resp."),
    ),
)
"""PF, PUPPI, DeepMET and Perceiver MET, in the order of the report; the references: the file's ``MET`` and CMS's
other MET columns (:data:`coffea_mlreco.core.nanoaod.CMS_MET`)."""

CMS_COUNTERPARTS: dict[str, str] = {"pf": "cms_raw_pf", "puppi": "cms_raw_puppi", "deepmet": "cms_deepmet_resolution"}
"""Our method → CMS's column computed the same way, compared event by event where a file carries both (PFNano):
our PF and PUPPI MET are −Σ p_T of the (weighted) candidates with no jet correction, as CMS's raw ones; our DeepMET
regresses the generator MET, as CMS's resolution tune does."""

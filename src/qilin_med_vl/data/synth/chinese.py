"""The Chinese phrase book: the reference translation of every English text of the synthetic world.

Terms follow Chinese radiology and pathology reports (胸部X光片, 头部CT, 腹部CT, 超声, 病理切片;
左侧/右侧, 上部/下部, 较小/较大, 是/否), and each English phrase always gets the same Chinese phrase.
"""

from __future__ import annotations

from qilin_med_vl.data.synth.findings import (
    ABDOMINAL_CT,
    CHEST_XRAY,
    HEAD_CT,
    HISTOLOGY,
    LARGE,
    LEFT,
    LOWER,
    MODALITY_QUESTION,
    NO,
    PRESENCE_QUESTION,
    REGION_QUESTION,
    RIGHT,
    SIDE_QUESTION,
    SIZE_QUESTION,
    SMALL,
    ULTRASOUND,
    UPPER,
    YES,
)
from qilin_med_vl.data.synth.language import PhraseBook
from qilin_med_vl.data.synth.real import REAL_CT, REAL_MRI, REAL_ULTRASOUND, REAL_XRAY

CHINESE = PhraseBook(
    modality_answer={
        CHEST_XRAY: "胸部X光片",
        HEAD_CT: "头部CT",
        ABDOMINAL_CT: "腹部CT",
        ULTRASOUND: "超声",
        HISTOLOGY: "病理切片",
    },
    modality_phrase={
        CHEST_XRAY: "胸部X光片",
        HEAD_CT: "头部CT轴位图像",
        ABDOMINAL_CT: "腹部CT轴位图像",
        ULTRASOUND: "超声图像",
        HISTOLOGY: "HE染色病理切片",
    },
    lesion={
        CHEST_XRAY: "肿块",
        HEAD_CT: "高密度病灶",
        ABDOMINAL_CT: "低密度肿块",
        ULTRASOUND: "低回声病灶",
        HISTOLOGY: "肿瘤细胞巢",
    },
    answers={
        YES: "是",
        NO: "否",
        LEFT: "左侧",
        RIGHT: "右侧",
        UPPER: "上部",
        LOWER: "下部",
        SMALL: "较小",
        LARGE: "较大",
    },
    distractors={
        PRESENCE_QUESTION: ("不确定", "无法评估"),
        SIDE_QUESTION: ("双侧", "中线"),
        REGION_QUESTION: ("中部", "弥漫"),
        SIZE_QUESTION: ("中等", "无法测量"),
    },
    size_adjective={SMALL: "较小的", LARGE: "较大的"},
    place={
        (LEFT, UPPER): "左上部",
        (RIGHT, UPPER): "右上部",
        (LEFT, LOWER): "左下部",
        (RIGHT, LOWER): "右下部",
    },
    this_image=("这张图像", "这些图像"),
    the_image=("图像", "各图像"),
    questions={
        MODALITY_QUESTION: (
            "{this_image}是什么成像方式？",
            "这是什么类型的图像？",
            "{this_image}来自哪种检查？",
        ),
        PRESENCE_QUESTION: (
            "{this_image}中是否可见{lesion}？",
            "{this_image}是否显示{lesion}？",
        ),
        SIDE_QUESTION: (
            "{lesion}位于{the_image}的哪一侧？",
            "{lesion}位于{the_image}的左侧还是右侧？",
        ),
        REGION_QUESTION: (
            "{lesion}位于{the_image}的上部还是下部？",
            "{lesion}位于{the_image}的哪个部位，上部还是下部？",
        ),
        SIZE_QUESTION: (
            "{lesion}较小还是较大？",
            "{lesion}的大小如何？",
        ),
    },
    caption_present=(
        "{modality}显示图像{place}有一个{size}{lesion}。",
        "{modality}中，图像{place}可见一个{size}{lesion}。",
    ),
    caption_absent=(
        "{modality}未见明显{lesion}。",
        "{modality}表现正常，未见{lesion}。",
    ),
    inline_present=("{figures}（{modality}）显示{the_image}{place}有一个{size}{lesion}。",) * 2,
    inline_absent=("{figures}（{modality}）未见{lesion}。",) * 2,
    figure_refs=("图{a}", "图{a}和图{b}", "图{a}至图{c}"),
    context="患者，{sex}，{age}岁，因{symptom}就诊，行{exam}。{outcome}",
    sex={"male": "男", "female": "女"},
    symptom={
        CHEST_XRAY: "咳嗽、气短",
        HEAD_CT: "头痛、头晕",
        ABDOMINAL_CT: "腹痛",
        ULTRASOUND: "腹部不适",
        HISTOLOGY: "发现可疑结节",
    },
    exam={
        CHEST_XRAY: "胸部X光检查",
        HEAD_CT: "头部CT检查",
        ABDOMINAL_CT: "腹部CT检查",
        ULTRASOUND: "超声检查",
        HISTOLOGY: "活检",
    },
    outcome_present="检查发现一个{size}{lesion}。",
    outcome_absent="检查未见{lesion}。",
    real_caption={
        REAL_XRAY: "胸部X光片（计算机X线摄影），来自DICOM检查。",
        REAL_CT: "CT断层图像，来自DICOM检查。",
        REAL_MRI: "磁共振成像（MRI）断层图像，来自DICOM检查。",
        REAL_ULTRASOUND: "超声图像，来自DICOM检查。",
    },
    capitalize_sentences=False,
)
